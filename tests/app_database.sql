-- An application's database before memcli: the 13 core business tables with rows, NOT migrated.
-- It deliberately differs from the schema document, as real applications do:
--   businesses: extra column timezone; no stripe_customer_id, stripe_subscription_id, custom_phone_sid,
--               category_config, phone_usage (optional columns the app never added)
--   menu_items: extra columns allergens text[] and is_vegetarian; no image_url
--   working_hours: extra column note; day_of_week 0 = Monday .. 6 = Sunday
--   an updated_at trigger and an index of the app's own, and an app-only table (reservations)
-- Fixed ids, so tests can name rows:
--   businesses  11111111-...-0001 Trattoria Roma (restaurant, active)
--               11111111-...-0002 Green Leaf Cafe (cafe, active)
--               11111111-...-0003 Old Harbour Grill (restaurant, INACTIVE)
--   menu item   33333333-...-0004 Truffle Risotto (Trattoria Roma, UNAVAILABLE)
--   working_hours: Trattoria Roma closed on Monday (day_of_week 0)

CREATE TABLE businesses (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    slug text DEFAULT '',
    description text,
    category text,
    subscription_plan text,
    subscription_status text,
    is_active boolean DEFAULT true,
    trial_ends_at timestamptz,
    phone_config jsonb,
    custom_phone_number text,
    custom_whatsapp_number text,
    phone_features jsonb,
    custom_number_monthly_cost numeric,
    settings jsonb,
    branding_config jsonb,
    contact_info jsonb,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    user_id uuid,
    email varchar,
    owner_name varchar,
    phone varchar,
    website_url varchar,
    owner_id uuid,
    timezone text DEFAULT 'Europe/Berlin'
);
CREATE INDEX app_businesses_slug ON businesses (slug);

CREATE FUNCTION app_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER app_businesses_touch BEFORE UPDATE ON businesses
    FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();

CREATE TABLE menu_categories (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    business_id uuid REFERENCES businesses(id) ON DELETE CASCADE,
    name text NOT NULL,
    description text,
    sort_order integer DEFAULT 0,
    is_active boolean DEFAULT true,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);

CREATE TABLE menu_items (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    business_id uuid REFERENCES businesses(id) ON DELETE CASCADE,
    category_id uuid REFERENCES menu_categories(id),
    name text NOT NULL,
    description text,
    price numeric(10, 2),
    is_available boolean DEFAULT true,
    sort_order integer DEFAULT 0,
    allergens text[],
    is_vegetarian boolean DEFAULT false,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);

CREATE TABLE messages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id text NOT NULL,
    role text NOT NULL,
    content text NOT NULL,
    business_id uuid REFERENCES businesses(id),
    created_at timestamptz DEFAULT now(),
    chat_context text DEFAULT 'global',
    sender_type text DEFAULT 'global'
);

CREATE TABLE orders (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    business_id uuid REFERENCES businesses(id),
    customer_name text,
    status text DEFAULT 'open',
    total numeric(10, 2),
    created_at timestamptz DEFAULT now()
);

CREATE TABLE order_items (
    order_id uuid REFERENCES orders(id),
    menu_item_id uuid REFERENCES menu_items(id),
    quantity integer NOT NULL DEFAULT 1,
    price numeric(10, 2)
);

CREATE TABLE staff (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    business_id uuid REFERENCES businesses(id) ON DELETE CASCADE,
    full_name text,
    position text
);

CREATE TABLE tables (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    business_id uuid REFERENCES businesses(id),
    label text,
    seats integer
);

CREATE TABLE qr_codes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    business_id uuid REFERENCES businesses(id) ON DELETE CASCADE,
    table_id uuid REFERENCES tables(id),
    target_url text
);

CREATE TABLE working_hours (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    business_id uuid REFERENCES businesses(id),
    day_of_week integer NOT NULL,
    open_time time,
    close_time time,
    is_closed boolean DEFAULT false,
    note text
);

CREATE TABLE profiles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    display_name text,
    email text
);

CREATE TABLE session_states (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id text,
    state jsonb,
    updated_at timestamptz DEFAULT now()
);

CREATE TABLE "Live Dining Board" (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    table_id uuid REFERENCES tables(id),
    status text,
    updated_at timestamptz DEFAULT now()
);

-- an application table that is not one of the 13: memcli never touches it
CREATE TABLE reservations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    business_id uuid REFERENCES businesses(id),
    table_id uuid REFERENCES tables(id),
    guest_name text NOT NULL,
    party_size integer,
    reserved_for timestamptz
);

INSERT INTO businesses (id, name, slug, description, category, subscription_plan, is_active, contact_info,
                        user_id, email, owner_name, phone, website_url, settings) VALUES
('11111111-1111-1111-1111-000000000001', 'Trattoria Roma', 'trattoria-roma',
 'Family-run Italian restaurant with wood-fired pizza and fresh pasta.', 'restaurant', 'pro', true,
 '{"phone": "+49 30 1234567", "email": "ciao@trattoria-roma.example", "address": "Via Appia 12",
   "city": "Berlin", "postal_code": "10115", "country": "DE"}',
 'aaaaaaaa-aaaa-aaaa-aaaa-000000000001', 'owner@trattoria-roma.example', 'Giulia Rossi',
 '+49 30 1234567', 'https://trattoria-roma.example', '{"reservations": true}'),
('11111111-1111-1111-1111-000000000002', 'Green Leaf Cafe', 'green-leaf',
 'Vegetarian and vegan cafe: breakfast bowls, salads and cakes.', 'cafe', 'basic', true,
 '{"phone": "+49 40 7654321", "email": "hello@greenleaf.example", "address": "Lindenstrasse 5",
   "city": "Hamburg"}',
 'aaaaaaaa-aaaa-aaaa-aaaa-000000000002', 'hello@greenleaf.example', 'Jonas Weber', '+49 40 7654321', NULL,
 NULL),
('11111111-1111-1111-1111-000000000003', 'Old Harbour Grill', 'old-harbour',
 'Seafood grill, closed for renovation.', 'restaurant', 'basic', false,
 '{"phone": "+49 421 555000", "city": "Bremen"}',
 'aaaaaaaa-aaaa-aaaa-aaaa-000000000003', NULL, 'Piet Jansen', NULL, NULL, NULL);

INSERT INTO menu_categories (id, business_id, name, description, sort_order) VALUES
('22222222-2222-2222-2222-000000000001', '11111111-1111-1111-1111-000000000001', 'Pizza', 'Wood-fired', 1),
('22222222-2222-2222-2222-000000000002', '11111111-1111-1111-1111-000000000001', 'Pasta', 'Made in house', 2),
('22222222-2222-2222-2222-000000000003', '11111111-1111-1111-1111-000000000002', 'Bowls', NULL, 1),
('22222222-2222-2222-2222-000000000004', '11111111-1111-1111-1111-000000000003', 'Grill', NULL, 1);

INSERT INTO menu_items (id, business_id, category_id, name, description, price, is_available, sort_order,
                        allergens, is_vegetarian) VALUES
('33333333-3333-3333-3333-000000000001', '11111111-1111-1111-1111-000000000001',
 '22222222-2222-2222-2222-000000000001', 'Margherita', 'Tomato, mozzarella, basil', 9.50, true, 1,
 '{gluten,milk}', true),
('33333333-3333-3333-3333-000000000002', '11111111-1111-1111-1111-000000000001',
 '22222222-2222-2222-2222-000000000001', 'Diavola', 'Spicy salami, chili', 11.00, true, 2, '{gluten,milk}', false),
('33333333-3333-3333-3333-000000000003', '11111111-1111-1111-1111-000000000001',
 '22222222-2222-2222-2222-000000000002', 'Spaghetti Carbonara', 'Guanciale, egg, pecorino', 12.50, true, 1,
 '{gluten,egg,milk}', false),
('33333333-3333-3333-3333-000000000004', '11111111-1111-1111-1111-000000000001',
 '22222222-2222-2222-2222-000000000002', 'Truffle Risotto', 'Seasonal, black truffle', 19.00, false, 2,
 '{milk}', true),
('33333333-3333-3333-3333-000000000005', '11111111-1111-1111-1111-000000000002',
 '22222222-2222-2222-2222-000000000003', 'Buddha Bowl', 'Quinoa, chickpeas, tahini', 10.90, true, 1,
 '{sesame}', true),
('33333333-3333-3333-3333-000000000006', '11111111-1111-1111-1111-000000000002',
 '22222222-2222-2222-2222-000000000003', 'Vegan Chocolate Cake', NULL, 4.50, true, 2, NULL, true),
('33333333-3333-3333-3333-000000000007', '11111111-1111-1111-1111-000000000003',
 '22222222-2222-2222-2222-000000000004', 'Grilled Sea Bass', NULL, 24.00, true, 1, '{fish}', false);

-- Trattoria Roma: closed Monday, 12:00-22:00 Tuesday..Sunday; Green Leaf: weekdays 08:00-18:00, closed weekend
INSERT INTO working_hours (business_id, day_of_week, open_time, close_time, is_closed, note) VALUES
('11111111-1111-1111-1111-000000000001', 0, NULL, NULL, true, 'Ruhetag'),
('11111111-1111-1111-1111-000000000001', 1, '12:00', '22:00', false, NULL),
('11111111-1111-1111-1111-000000000001', 2, '12:00', '22:00', false, NULL),
('11111111-1111-1111-1111-000000000001', 3, '12:00', '22:00', false, NULL),
('11111111-1111-1111-1111-000000000001', 4, '12:00', '23:00', false, NULL),
('11111111-1111-1111-1111-000000000001', 5, '12:00', '23:00', false, NULL),
('11111111-1111-1111-1111-000000000001', 6, '12:00', '21:00', false, NULL),
('11111111-1111-1111-1111-000000000002', 0, '08:00', '18:00', false, NULL),
('11111111-1111-1111-1111-000000000002', 1, '08:00', '18:00', false, NULL),
('11111111-1111-1111-1111-000000000002', 2, '08:00', '18:00', false, NULL),
('11111111-1111-1111-1111-000000000002', 3, '08:00', '18:00', false, NULL),
('11111111-1111-1111-1111-000000000002', 4, '08:00', '18:00', false, NULL),
('11111111-1111-1111-1111-000000000002', 5, NULL, NULL, true, NULL),
('11111111-1111-1111-1111-000000000002', 6, NULL, NULL, true, NULL);

INSERT INTO messages (session_id, role, content, business_id, created_at, chat_context) VALUES
('session-roma-1', 'user', 'Do you have vegetarian pizza?', '11111111-1111-1111-1111-000000000001',
 now() - interval '2 days', 'dedicated'),
('session-roma-1', 'assistant', 'Yes, the Margherita is vegetarian.', '11111111-1111-1111-1111-000000000001',
 now() - interval '2 days' + interval '5 seconds', 'dedicated'),
('session-roma-2', 'user', 'Are you open on Monday?', '11111111-1111-1111-1111-000000000001',
 now() - interval '1 day', 'dedicated'),
('session-roma-2', 'assistant', 'We are closed on Mondays.', '11111111-1111-1111-1111-000000000001',
 now() - interval '1 day' + interval '4 seconds', 'dedicated'),
('session-leaf-1', 'user', 'Vegan cake today?', '11111111-1111-1111-1111-000000000002', now() - interval '3 hours',
 'global'),
('session-global-1', 'user', 'Find me a cafe in Hamburg', NULL, now() - interval '1 hour', 'global');

INSERT INTO tables (id, business_id, label, seats) VALUES
('44444444-4444-4444-4444-000000000001', '11111111-1111-1111-1111-000000000001', 'T1', 2),
('44444444-4444-4444-4444-000000000002', '11111111-1111-1111-1111-000000000001', 'T2', 4),
('44444444-4444-4444-4444-000000000003', '11111111-1111-1111-1111-000000000002', 'Window', 2);

INSERT INTO qr_codes (business_id, table_id, target_url) VALUES
('11111111-1111-1111-1111-000000000001', '44444444-4444-4444-4444-000000000001', 'https://qr.example/roma/t1'),
('11111111-1111-1111-1111-000000000001', '44444444-4444-4444-4444-000000000002', 'https://qr.example/roma/t2');

INSERT INTO orders (id, business_id, customer_name, status, total) VALUES
('55555555-5555-5555-5555-000000000001', '11111111-1111-1111-1111-000000000001', 'Anna', 'paid', 21.00),
('55555555-5555-5555-5555-000000000002', '11111111-1111-1111-1111-000000000002', 'Ben', 'open', 10.90);

INSERT INTO order_items (order_id, menu_item_id, quantity, price) VALUES
('55555555-5555-5555-5555-000000000001', '33333333-3333-3333-3333-000000000001', 1, 9.50),
('55555555-5555-5555-5555-000000000001', '33333333-3333-3333-3333-000000000003', 1, 11.50),
('55555555-5555-5555-5555-000000000002', '33333333-3333-3333-3333-000000000005', 1, 10.90);

INSERT INTO staff (business_id, full_name, position) VALUES
('11111111-1111-1111-1111-000000000001', 'Marco Bianchi', 'chef'),
('11111111-1111-1111-1111-000000000001', 'Lena Schmidt', 'waiter'),
('11111111-1111-1111-1111-000000000002', 'Tom Becker', 'barista');

INSERT INTO profiles (id, display_name, email) VALUES
('aaaaaaaa-aaaa-aaaa-aaaa-000000000001', 'Giulia Rossi', 'owner@trattoria-roma.example'),
('aaaaaaaa-aaaa-aaaa-aaaa-000000000002', 'Jonas Weber', 'hello@greenleaf.example');

INSERT INTO session_states (session_id, state) VALUES
('session-roma-1', '{"step": "menu", "cart": []}'),
('session-leaf-1', '{"step": "greeting"}');

INSERT INTO "Live Dining Board" (table_id, status) VALUES
('44444444-4444-4444-4444-000000000001', 'occupied'),
('44444444-4444-4444-4444-000000000002', 'free');

INSERT INTO reservations (business_id, table_id, guest_name, party_size, reserved_for) VALUES
('11111111-1111-1111-1111-000000000001', '44444444-4444-4444-4444-000000000002', 'Clara', 4,
 now() + interval '1 day');
