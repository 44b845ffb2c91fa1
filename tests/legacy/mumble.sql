-- Mumble layout: the CREATE TABLE and CREATE INDEX statements of its schema document, as written there.
-- Adapted to run on Postgres 16 + pgvector:
-- * conversation_sessions and conversation_history come before entity_mentions (the document lists
--   entity_mentions first, but its foreign key needs conversation_history to exist);
-- * bot_config has no CREATE TABLE in the document, only INSERT ... ON CONFLICT (key): reconstructed as
--   (key primary key, value text);
-- * the ivfflat index on conversation_history.embedding is left out: it is FLOAT8[], not a pgvector type,
--   so "vector_cosine_ops" cannot apply to it (the document notes it needs pgvector).
CREATE TABLE conversation_sessions (
    id SERIAL PRIMARY KEY,
    user_name VARCHAR(255) NOT NULL,
    session_id VARCHAR(255) NOT NULL UNIQUE,
    started_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    last_activity TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    state VARCHAR(20) DEFAULT 'active' CHECK (state IN ('active', 'idle', 'closed')),
    message_count INTEGER DEFAULT 0,
    UNIQUE(user_name, session_id)
);

CREATE TABLE conversation_history (
    id SERIAL PRIMARY KEY,
    user_name VARCHAR(255) NOT NULL,
    user_session INTEGER NOT NULL,
    session_id VARCHAR(255),
    message_type VARCHAR(10) NOT NULL CHECK (message_type IN ('voice', 'text')),
    role VARCHAR(10) NOT NULL CHECK (role IN ('user', 'assistant')),
    message TEXT NOT NULL,
    embedding FLOAT8[],
    importance_score FLOAT DEFAULT 0.5,
    summary TEXT,
    timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    consolidated_at TIMESTAMP,
    consolidated_summary_id VARCHAR(255),
    FOREIGN KEY (session_id) REFERENCES conversation_sessions(session_id) ON DELETE SET NULL
);

CREATE TABLE entity_mentions (
    id SERIAL PRIMARY KEY,
    user_name VARCHAR(255) NOT NULL,
    entity_text VARCHAR(255) NOT NULL,
    canonical_id VARCHAR(255) NOT NULL,
    entity_type VARCHAR(50) NOT NULL,
    confidence FLOAT DEFAULT 1.0,
    context_info TEXT,
    message_id INTEGER REFERENCES conversation_history(id),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE bot_config (
    key VARCHAR(255) PRIMARY KEY,
    value TEXT
);

CREATE INDEX idx_conversation_timestamp ON conversation_history(timestamp DESC);
CREATE INDEX idx_conversation_user ON conversation_history(user_name);
CREATE INDEX idx_conversation_session ON conversation_history(session_id);
CREATE INDEX idx_conversation_role ON conversation_history(role);
CREATE INDEX idx_conversation_importance ON conversation_history(importance_score DESC);
CREATE INDEX idx_session_user ON conversation_sessions(user_name);
CREATE INDEX idx_session_activity ON conversation_sessions(last_activity DESC);
CREATE INDEX idx_entity_canonical ON entity_mentions(canonical_id);
CREATE INDEX idx_entity_user ON entity_mentions(user_name);
CREATE INDEX idx_entity_type ON entity_mentions(entity_type);
CREATE INDEX idx_entity_confidence ON entity_mentions(confidence DESC);

INSERT INTO bot_config (key, value) VALUES
    ('embedding_model', 'nomic-embed-text:latest'),
    ('short_term_memory_limit', '10'),
    ('long_term_memory_limit', '10'),
    ('semantic_similarity_threshold', '0.7'),
    ('session_timeout_minutes', '30'),
    ('session_reactivation_minutes', '10'),
    ('use_chain_of_thought', 'false'),
    ('use_semantic_memory_ranking', 'true'),
    ('use_response_validation', 'false'),
    ('enable_parallel_processing', 'true'),
    ('whisper_circuit_threshold', '5'),
    ('whisper_circuit_timeout', '60.0'),
    ('piper_circuit_threshold', '5'),
    ('piper_circuit_timeout', '60.0'),
    ('ollama_circuit_threshold', '5'),
    ('ollama_circuit_timeout', '60.0'),
    ('db_circuit_threshold', '3'),
    ('db_circuit_timeout', '30.0'),
    ('health_check_interval', '30.0')
ON CONFLICT (key) DO NOTHING;
