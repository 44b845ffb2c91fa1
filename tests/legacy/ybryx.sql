-- ybryx layout. Its deployment report gives no CREATE TABLE statements: it names the tables (sessions,
-- memory_logs, goal_assessments, belief_graphs, ...), the vector columns as deployed ("goal_vector JSONB",
-- "belief_vector JSONB", instead of VECTOR(1536)), UUID primary keys, user_id / session_id foreign keys,
-- agent_name, status, timestamps, and memory_logs as the log of write / read / recall / decay operations.
-- The tables below are reconstructed from exactly those statements; the other columns (goal_text, belief,
-- confidence, progress, evidence, memory_id, operation) are the smallest set that carries what the report
-- describes. uuid-ossp's uuid_generate_v4() is replaced by the built-in gen_random_uuid().
CREATE TABLE users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email TEXT
);

CREATE TABLE sessions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id TEXT NOT NULL UNIQUE,
    user_id UUID REFERENCES users(id),
    agent_name TEXT NOT NULL,
    context JSONB DEFAULT '{}'::jsonb,
    status TEXT DEFAULT 'active',
    started_at TIMESTAMPTZ DEFAULT now(),
    ended_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ DEFAULT now()
);

CREATE TABLE goal_assessments (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id),
    session_id TEXT REFERENCES sessions(session_id),
    agent_name TEXT NOT NULL,
    goal_text TEXT NOT NULL,
    goal_vector JSONB,  -- Embedding stored as JSON array (e.g., [0.1, 0.2, ...])
    status TEXT DEFAULT 'active',
    progress FLOAT DEFAULT 0,
    confidence FLOAT,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now()
);

CREATE TABLE belief_graphs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id),
    agent_name TEXT NOT NULL,
    belief TEXT NOT NULL,
    belief_vector JSONB,  -- Embedding stored as JSON array
    confidence FLOAT DEFAULT 0.5,
    evidence JSONB,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now()
);

CREATE TABLE memory_logs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID REFERENCES users(id),
    session_id TEXT,
    agent_name TEXT,
    memory_id UUID,
    operation TEXT NOT NULL CHECK (operation IN ('write', 'read', 'recall', 'decay')),
    details JSONB,
    created_at TIMESTAMPTZ DEFAULT now()
);

CREATE INDEX idx_memory_logs_memory ON memory_logs(memory_id);
CREATE INDEX idx_memory_logs_created ON memory_logs(created_at);
CREATE INDEX idx_goal_assessments_user ON goal_assessments(user_id);
CREATE INDEX idx_belief_graphs_user ON belief_graphs(user_id);
