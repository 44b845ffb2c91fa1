-- Graive layout. Its summary document gives no DDL (the models are SQLAlchemy classes it only names); it
-- lists each table's key fields, which these tables carry: conversations (session_id, status,
-- total_messages, compression_count), messages (role, content, embedding_id, importance_score),
-- memory_segments (summary, tier, importance_score, compression_level, and the message_ids a segment is made
-- from, as in its add_memory_segment example), vector_embeddings (source_type, source_id, model_name).
-- UUID primary keys ("UUID primary keys prevent enumeration attacks"), JSONB for lists and metadata.
-- Vectors themselves live in ChromaDB, not in these tables.
CREATE TABLE users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    username TEXT NOT NULL,
    email TEXT
);

CREATE TABLE conversations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id),
    session_id TEXT,
    title TEXT,
    status TEXT DEFAULT 'active',
    total_messages INTEGER DEFAULT 0,
    compression_count INTEGER DEFAULT 0,
    created_at TIMESTAMP DEFAULT now()
);

CREATE TABLE messages (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id UUID NOT NULL REFERENCES conversations(id),
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    embedding_id TEXT,
    importance_score FLOAT DEFAULT 0.5,
    created_at TIMESTAMP DEFAULT now()
);

CREATE TABLE memory_segments (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id UUID NOT NULL REFERENCES conversations(id),
    summary TEXT NOT NULL,
    message_ids JSONB DEFAULT '[]'::jsonb,
    tier TEXT NOT NULL DEFAULT 'short_term',
    importance_score FLOAT DEFAULT 0.5,
    compression_level INTEGER DEFAULT 1,
    created_at TIMESTAMP DEFAULT now()
);

CREATE TABLE vector_embeddings (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    source_type TEXT NOT NULL,
    source_id TEXT NOT NULL,
    model_name TEXT NOT NULL,
    created_at TIMESTAMP DEFAULT now()
);

CREATE INDEX idx_messages_conversation ON messages(conversation_id, created_at);
CREATE INDEX idx_memory_segments_conversation ON memory_segments(conversation_id);
CREATE INDEX idx_vector_embeddings_source ON vector_embeddings(source_type, source_id);
