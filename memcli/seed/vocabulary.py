"""The words the demo dataset is made of: restaurants, their menus and hours, guests and what they say.

Kept apart from the generator so the generator reads as logic. Everything is a tuple (never a set): the
generator draws from these with ``random.Random`` and set order would vary between processes.
"""

from __future__ import annotations

from dataclasses import dataclass

# Dish tags: vegetarian, vegan, gluten_free, spicy, nuts, fish, meat


@dataclass(frozen=True)
class Dish:
    name: str
    description: str
    price: float
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Archetype:
    kind: str
    category: str
    cuisine: str
    names: tuple[str, ...]
    description: str
    menu: tuple[tuple[str, str, tuple[Dish, ...]], ...]  # (category, category description, dishes)
    # (weekday 0=Monday, ((open, close), ...)); a weekday with no periods is a closed day
    hours: tuple[tuple[int, tuple[tuple[str, str], ...]], ...]


def _week(default: tuple[tuple[str, str], ...], **overrides: tuple[tuple[str, str], ...]) -> tuple:
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return tuple((index, overrides.get(name, default)) for index, name in enumerate(names))


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype(
        kind="trattoria",
        category="Italian restaurant",
        cuisine="Italian",
        names=("Trattoria Bella Nonna", "Trattoria da Marco", "Osteria del Ponte", "Trattoria Lucia"),
        description="Family-run trattoria with fresh pasta made every morning and a wood-fired oven.",
        menu=(
            (
                "Antipasti",
                "Starters to share",
                (
                    Dish(
                        "Bruschetta al pomodoro",
                        "Grilled sourdough, tomatoes, basil, garlic",
                        7.5,
                        ("vegan",),
                    ),
                    Dish(
                        "Burrata with heirloom tomatoes",
                        "Creamy burrata, basil oil",
                        11.0,
                        ("vegetarian", "gluten_free"),
                    ),
                    Dish("Arancini", "Fried risotto balls with mozzarella", 8.5, ("vegetarian",)),
                    Dish("Calamari fritti", "Crispy squid, lemon aioli", 10.5, ("fish",)),
                ),
            ),
            (
                "Pasta",
                "Made in house every morning",
                (
                    Dish("Spaghetti carbonara", "Guanciale, egg yolk, pecorino", 14.0, ("meat",)),
                    Dish("Penne all'arrabbiata", "Tomato, chilli, garlic", 12.0, ("vegan", "spicy")),
                    Dish(
                        "Ravioli ricotta e spinaci", "Ricotta and spinach, sage butter", 15.5, ("vegetarian",)
                    ),
                    Dish("Linguine alle vongole", "Clams, white wine, parsley", 17.0, ("fish",)),
                    Dish("Lasagne al forno", "Slow-cooked beef ragu, bechamel", 15.0, ("meat",)),
                ),
            ),
            (
                "Pizza",
                "From the wood-fired oven",
                (
                    Dish("Pizza Margherita", "Tomato, fior di latte, basil", 11.0, ("vegetarian",)),
                    Dish("Pizza Diavola", "Spicy salami, chilli oil", 13.5, ("meat", "spicy")),
                    Dish("Pizza funghi e tartufo", "Wild mushrooms, truffle cream", 14.5, ("vegetarian",)),
                ),
            ),
            (
                "Dolci",
                "Desserts",
                (
                    Dish("Tiramisu", "Mascarpone, espresso, cocoa", 7.0, ("vegetarian",)),
                    Dish("Panna cotta", "Vanilla, berry coulis", 6.5, ("vegetarian", "gluten_free")),
                    Dish(
                        "Affogato", "Vanilla gelato drowned in espresso", 5.5, ("vegetarian", "gluten_free")
                    ),
                ),
            ),
        ),
        hours=_week((("12:00", "15:00"), ("18:00", "22:30")), mon=()),
    ),
    Archetype(
        kind="vegan cafe",
        category="Vegan cafe",
        cuisine="vegan",
        names=("Green Sprout Cafe", "The Leafy Table", "Oat & Ivy", "Sunflower Kitchen"),
        description="Plant-based cafe: every dish is vegan, with plenty of gluten-free choices and oat milk.",
        menu=(
            (
                "Breakfast",
                "Served until noon",
                (
                    Dish(
                        "Avocado toast",
                        "Smashed avocado on sourdough, chilli flakes",
                        9.5,
                        ("vegan", "vegetarian"),
                    ),
                    Dish("Tofu scramble", "Turmeric tofu, spinach, rye toast", 10.0, ("vegan", "vegetarian")),
                    Dish(
                        "Overnight oats", "Oats, berries, almond butter", 7.0, ("vegan", "vegetarian", "nuts")
                    ),
                ),
            ),
            (
                "Bowls",
                "All day",
                (
                    Dish(
                        "Buddha bowl",
                        "Quinoa, roast squash, tahini",
                        12.5,
                        ("vegan", "vegetarian", "gluten_free"),
                    ),
                    Dish(
                        "Jackfruit tacos",
                        "Pulled jackfruit, slaw, lime",
                        11.5,
                        ("vegan", "vegetarian", "spicy"),
                    ),
                    Dish(
                        "Lentil and sweet potato curry",
                        "Coconut, coriander, brown rice",
                        12.0,
                        ("vegan", "vegetarian", "gluten_free"),
                    ),
                ),
            ),
            (
                "Drinks",
                None,
                (
                    Dish("Oat milk flat white", "Double shot", 3.8, ("vegan", "vegetarian", "gluten_free")),
                    Dish(
                        "Matcha latte",
                        "Ceremonial matcha, oat milk",
                        4.2,
                        ("vegan", "vegetarian", "gluten_free"),
                    ),
                    Dish(
                        "Green smoothie",
                        "Spinach, banana, mango",
                        5.5,
                        ("vegan", "vegetarian", "gluten_free"),
                    ),
                ),
            ),
            (
                "Cakes",
                "Baked here daily",
                (
                    Dish(
                        "Raw cacao brownie",
                        "Dates, walnuts, cacao",
                        4.5,
                        ("vegan", "vegetarian", "gluten_free", "nuts"),
                    ),
                    Dish("Carrot cake", "Cashew frosting", 4.8, ("vegan", "vegetarian", "nuts")),
                ),
            ),
        ),
        hours=_week((("07:30", "17:00"),), sat=(("09:00", "16:00"),), sun=(("09:00", "15:00"),)),
    ),
    Archetype(
        kind="sushi bar",
        category="Japanese restaurant",
        cuisine="Japanese",
        names=("Sakura Sushi Bar", "Koi Sushi Counter", "Umami House", "Nori & Rice"),
        description="Counter-style sushi bar; fish delivered daily, omakase on Friday and Saturday evenings.",
        menu=(
            (
                "Nigiri",
                "Two pieces",
                (
                    Dish("Salmon nigiri", "Scottish salmon", 6.5, ("fish", "gluten_free")),
                    Dish("Tuna nigiri", "Yellowfin tuna", 7.5, ("fish", "gluten_free")),
                    Dish("Eel nigiri", "Grilled eel, kabayaki glaze", 7.0, ("fish",)),
                ),
            ),
            (
                "Rolls",
                "Eight pieces",
                (
                    Dish("California roll", "Crab, avocado, cucumber", 9.0, ("fish",)),
                    Dish("Spicy tuna roll", "Tuna, sriracha mayo, spring onion", 10.5, ("fish", "spicy")),
                    Dish(
                        "Avocado cucumber maki",
                        "Avocado, cucumber",
                        7.0,
                        ("vegan", "vegetarian", "gluten_free"),
                    ),
                    Dish(
                        "Sweet potato tempura roll",
                        "Tempura sweet potato, teriyaki",
                        8.5,
                        ("vegan", "vegetarian"),
                    ),
                ),
            ),
            (
                "Small plates",
                None,
                (
                    Dish("Edamame", "Sea salt", 4.5, ("vegan", "vegetarian", "gluten_free")),
                    Dish("Miso soup", "Tofu, wakame", 3.5, ("vegetarian",)),
                    Dish("Chicken karaage", "Fried chicken, yuzu mayo", 8.0, ("meat",)),
                    Dish("Agedashi tofu", "Fried tofu in dashi", 6.5, ("vegetarian",)),
                ),
            ),
            (
                "Desserts",
                None,
                (Dish("Mochi ice cream", "Three flavours", 5.5, ("vegetarian", "gluten_free")),),
            ),
        ),
        hours=_week((("11:30", "14:30"), ("17:30", "22:00")), sun=()),
    ),
    Archetype(
        kind="taqueria",
        category="Mexican restaurant",
        cuisine="Mexican",
        names=("La Taqueria Roja", "Tacos El Guero", "Casa Maiz", "El Comal"),
        description="Street-style tacos on fresh corn tortillas pressed to order, salsas made daily.",
        menu=(
            (
                "Tacos",
                "Corn tortillas, priced per taco",
                (
                    Dish("Taco al pastor", "Marinated pork, pineapple", 3.5, ("meat", "spicy")),
                    Dish("Taco de carnitas", "Slow-cooked pork", 3.5, ("meat",)),
                    Dish("Baja fish taco", "Beer-battered fish, cabbage", 4.0, ("fish",)),
                    Dish(
                        "Mushroom and poblano taco",
                        "Roasted mushrooms, poblano peppers",
                        3.5,
                        ("vegan", "vegetarian", "gluten_free"),
                    ),
                    Dish(
                        "Cauliflower al pastor",
                        "Chilli-rubbed cauliflower",
                        3.5,
                        ("vegan", "vegetarian", "spicy"),
                    ),
                ),
            ),
            (
                "Burritos and bowls",
                None,
                (
                    Dish("Chicken burrito", "Rice, beans, salsa verde", 10.5, ("meat",)),
                    Dish("Black bean burrito", "Rice, cheese, pico de gallo", 9.5, ("vegetarian",)),
                    Dish(
                        "Veggie burrito bowl", "Rice, beans, fajita vegetables", 10.0, ("vegan", "vegetarian")
                    ),
                ),
            ),
            (
                "Sides",
                None,
                (
                    Dish("Guacamole and chips", "Made to order", 6.0, ("vegan", "vegetarian", "gluten_free")),
                    Dish("Elote", "Grilled corn, cotija, chilli", 4.5, ("vegetarian", "gluten_free")),
                    Dish("Frijoles charros", "Pinto beans with bacon", 4.0, ("meat",)),
                ),
            ),
            (
                "Drinks",
                None,
                (
                    Dish("Horchata", "Rice, cinnamon, almond", 3.5, ("vegetarian", "nuts")),
                    Dish("Agua de jamaica", "Hibiscus", 3.0, ("vegan", "vegetarian", "gluten_free")),
                ),
            ),
        ),
        hours=_week((("11:00", "23:00"),), fri=(("11:00", "01:00"),), sat=(("11:00", "01:00"),)),
    ),
    Archetype(
        kind="steakhouse",
        category="Steakhouse",
        cuisine="steak",
        names=("The Iron Grill", "Prime Cut Steakhouse", "Ember & Oak", "Butcher's Block"),
        description="Dry-aged steaks cooked over charcoal, a long wine list and private dining for groups.",
        menu=(
            (
                "Starters",
                None,
                (
                    Dish("Beef carpaccio", "Rocket, parmesan, capers", 12.0, ("meat", "gluten_free")),
                    Dish("Prawn cocktail", "Marie rose sauce, baby gem", 11.0, ("fish", "gluten_free")),
                    Dish(
                        "Roasted beetroot salad",
                        "Goat cheese, candied walnuts",
                        9.5,
                        ("vegetarian", "gluten_free", "nuts"),
                    ),
                ),
            ),
            (
                "Steaks",
                "28-day dry-aged, cooked over charcoal",
                (
                    Dish("Ribeye 300g", "Well marbled, full flavour", 32.0, ("meat", "gluten_free")),
                    Dish("Fillet 250g", "The most tender cut", 38.0, ("meat", "gluten_free")),
                    Dish("Sirloin 280g", "Lean with a strip of fat", 28.0, ("meat", "gluten_free")),
                    Dish("Tomahawk for two", "1.2kg on the bone", 85.0, ("meat", "gluten_free")),
                ),
            ),
            (
                "Mains",
                None,
                (
                    Dish(
                        "Wild mushroom Wellington", "Spinach, chestnut, red wine jus", 24.0, ("vegetarian",)
                    ),
                    Dish("Grilled sea bass", "Samphire, lemon butter", 26.0, ("fish", "gluten_free")),
                ),
            ),
            (
                "Sides",
                None,
                (
                    Dish("Truffle fries", "Parmesan, truffle oil", 6.5, ("vegetarian",)),
                    Dish("Creamed spinach", "Nutmeg, cream", 5.5, ("vegetarian", "gluten_free")),
                    Dish("Mac and cheese", "Three cheeses", 6.0, ("vegetarian",)),
                ),
            ),
            (
                "Desserts",
                None,
                (
                    Dish("Sticky toffee pudding", "Toffee sauce, clotted cream", 8.0, ("vegetarian",)),
                    Dish("Chocolate fondant", "Salted caramel ice cream", 8.5, ("vegetarian",)),
                ),
            ),
        ),
        hours=_week((("17:00", "23:00"),), mon=(), sun=(("12:00", "21:00"),)),
    ),
    Archetype(
        kind="curry house",
        category="Indian restaurant",
        cuisine="Indian",
        names=("Spice Route", "The Tandoor Room", "Masala Lane", "Saffron House"),
        description="North Indian kitchen with a clay tandoor; many vegetarian dishes, heat made to order.",
        menu=(
            (
                "Starters",
                None,
                (
                    Dish(
                        "Onion bhaji",
                        "Gram flour, onion, mint chutney",
                        5.0,
                        ("vegan", "vegetarian", "gluten_free"),
                    ),
                    Dish("Samosa chaat", "Chickpeas, yoghurt, tamarind", 6.5, ("vegetarian",)),
                    Dish("Chicken tikka", "Tandoor-roasted, green chutney", 7.5, ("meat", "gluten_free")),
                ),
            ),
            (
                "Curries",
                "Served with rice on request",
                (
                    Dish(
                        "Chicken tikka masala", "Tomato, cream, cashew", 13.5, ("meat", "gluten_free", "nuts")
                    ),
                    Dish(
                        "Lamb rogan josh",
                        "Kashmiri chilli, slow-cooked",
                        15.0,
                        ("meat", "gluten_free", "spicy"),
                    ),
                    Dish(
                        "Chana masala",
                        "Chickpeas, tomato, ginger",
                        10.5,
                        ("vegan", "vegetarian", "gluten_free"),
                    ),
                    Dish("Palak paneer", "Spinach, paneer, garlic", 11.5, ("vegetarian", "gluten_free")),
                    Dish("Prawn madras", "Hot, tangy, coconut", 14.5, ("fish", "gluten_free", "spicy")),
                ),
            ),
            (
                "Breads and rice",
                None,
                (
                    Dish("Garlic naan", "From the tandoor", 3.5, ("vegetarian",)),
                    Dish("Pilau rice", "Basmati, whole spices", 3.5, ("vegan", "vegetarian", "gluten_free")),
                ),
            ),
            (
                "Desserts",
                None,
                (
                    Dish("Gulab jamun", "Warm, rose syrup", 5.0, ("vegetarian",)),
                    Dish("Mango kulfi", "Pistachio", 5.0, ("vegetarian", "gluten_free", "nuts")),
                ),
            ),
        ),
        hours=_week((("17:00", "23:30"),), tue=(), sat=(("12:00", "23:30"),), sun=(("12:00", "22:00"),)),
    ),
)

# Menu categories that do not make a meal on their own: not suggested as a dish for a diet.
NOT_A_MEAL = ("Dolci", "Desserts", "Drinks", "Cakes", "Sides", "Breads and rice")

CITIES: tuple[tuple[str, str, str], ...] = (  # (city, postal code, country)
    ("Leeds", "LS1 4AB", "United Kingdom"),
    ("Lisbon", "1200-195", "Portugal"),
    ("Portland", "97205", "United States"),
    ("Melbourne", "3000", "Australia"),
    ("Dublin", "D02 X285", "Ireland"),
    ("Toronto", "M5V 2T6", "Canada"),
    ("Bristol", "BS1 5TR", "United Kingdom"),
    ("Austin", "78701", "United States"),
)
STREETS = (
    "Market Street",
    "High Street",
    "Harbour Road",
    "Church Lane",
    "Station Square",
    "Mill Road",
    "King Street",
    "Riverside Walk",
)

FIRST_NAMES = (
    "Alex",
    "Priya",
    "Jonas",
    "Maria",
    "Sam",
    "Aisha",
    "Tom",
    "Lucia",
    "Kenji",
    "Fatima",
    "Oliver",
    "Chloe",
    "Mateo",
    "Hannah",
    "Ravi",
    "Zoe",
    "Daniel",
    "Ines",
    "Liam",
    "Mei",
)

# (diet, weight): most guests have none
DIETS = (
    (None, 45),
    ("vegetarian", 20),
    ("vegan", 10),
    ("pescatarian", 8),
    ("gluten_free", 10),
    ("halal", 4),
    ("low_carb", 3),
)
ALLERGENS = ("peanuts", "tree nuts", "shellfish", "dairy", "eggs", "sesame", "soy", "gluten")
SEATING = ("window", "terrace", "booth", "quiet corner", "bar counter", "garden")
TIMES = ("12:30", "13:00", "18:30", "19:00", "19:30", "20:00", "20:30")
CHANNELS = ("whatsapp", "sms", "email", "phone call")
LANGUAGES = (
    ("en", "English", 70),
    ("es", "Spanish", 10),
    ("pt", "Portuguese", 8),
    ("fr", "French", 7),
    ("it", "Italian", 5),
)
OCCASIONS = ("birthday", "anniversary", "engagement", "graduation", "work leaving do", "first date")
AREAS = ("the city centre", "the university area", "the harbour", "the north side", "the old town")
FEEDBACK = (
    (5, "Lovely evening, the staff remembered my allergy without me asking."),
    (4, "Great food, but we waited twenty minutes for a table despite booking."),
    (5, "Best meal we've had in months, will be back for the tasting menu."),
    (3, "Food was good but the music was far too loud to talk."),
    (2, "Delivery arrived cold and forty minutes late."),
    (4, "Really friendly team, the vegetarian options were better than expected."),
)
