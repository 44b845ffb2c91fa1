-- agent_memories layout. Its implementation document describes the tables but does not print their
-- CREATE TABLE statements (they are in a migration file it only names). Reconstructed from what it states:
-- UUID identification, memory types episodic / semantic / procedural / working, "Vector embeddings (1536
-- dimensions)" in a column named embeddings (its query orders by "embeddings <-> ?"), importance scoring
-- (its query filters "importance > 0.7"), decay tracking, relationship mapping, agent_id + memory_type
-- access, an agents table (its integrity check joins agents a ON a.id = am.agent_id), RLS by user.
-- Runs as is on Postgres 16 + pgvector (the IVFFlat index the document mentions is kept).
CREATE TABLE agents (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL,
    name TEXT
);

CREATE TABLE agent_memories (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id UUID NOT NULL REFERENCES agents(id),
    session_id UUID,
    memory_type TEXT NOT NULL CHECK (memory_type IN ('episodic', 'semantic', 'procedural', 'working')),
    content TEXT NOT NULL,
    embeddings vector(1536),
    importance FLOAT DEFAULT 0.5 CHECK (importance >= 0 AND importance <= 1),
    decay_rate FLOAT DEFAULT 0.1,
    access_count INTEGER DEFAULT 0,
    last_accessed_at TIMESTAMPTZ,
    related_memories UUID[] DEFAULT '{}',
    metadata JSONB DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now(),
    expires_at TIMESTAMPTZ
);

CREATE INDEX idx_agent_memories_agent_type ON agent_memories(agent_id, memory_type);
CREATE INDEX idx_agent_memories_metadata ON agent_memories USING gin (metadata);
CREATE INDEX idx_agent_memories_embeddings ON agent_memories USING ivfflat (embeddings vector_cosine_ops);
