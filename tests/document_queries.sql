-- The SQL examples of the schema document (seeds/000_...): "Query Examples", "Health Checks",
-- "Advanced Query Patterns", the maintenance sections ("Maintenance & Monitoring", "Automated Monitoring
-- Scripts", "Advanced Maintenance Procedures", "Monitoring & Analytics", "Support & Troubleshooting") and
-- "Advanced Use Cases", copied verbatim. tests/test_schema_document_queries.py runs every block against a
-- migrated database with rows, each block on its own (autocommit: VACUUM and REINDEX need it).
--
-- Placeholders of the document are replaced by the test before running: 'uuid-here',
-- 'user-uuid-here' -> a business's / user's uuid; '[0.1,0.2,...]' -> a full 384-dimension vector literal.
--
-- Skipped (they cannot run on this schema, by the document's own design):
--   "AI Tool Usage Analytics"      reads tool_execution_log, a table the document never defines
--   "User Engagement Metrics"      reads user_session_metrics, never defined
--   "Session-based semantic memory access" policy reads user_sessions, never defined (policies: see RLS)
--   "Memory Cleanup Job (Daily)" INSERT and "Monthly Performance Optimization" INSERT into
--                                  system_maintenance_log: they call pg_last_query_start(), which does not
--                                  exist in Postgres, use status 'completed' and (monthly) columns
--                                  tables_processed / indexes_rebuilt the document never defines
--   "Optimize index parameters"    ALTER INDEX idx_semantic_memory_vector SET (lists = 100): an ivfflat
--                                  parameter; the index is HNSW (its parameters are m / ef_construction)
--   Partitioning (CREATE TABLE conversation_memory_2024_01 PARTITION OF ...): conversation_memory is not a
--                                  partitioned table in the document either
--   "Encrypt sensitive memory content": not shipped (hard-coded key)

-- name: Get Recent Conversation Memory
SELECT * FROM conversation_memory
WHERE session_id = 'user_session_123'
  AND memory_type = 'short_term'
ORDER BY importance_score DESC, last_accessed_at DESC
LIMIT 10;

-- name: Find Relevant Semantic Memories
SELECT * FROM semantic_memory
WHERE session_id = 'user_session_123'
ORDER BY relevance_score DESC
LIMIT 5;

-- name: Get Business Context Sections
SELECT * FROM business_context_sections
WHERE business_id = 'uuid-here'
  AND is_active = true
ORDER BY section_order;

-- name: Active Businesses with Memory Stats
SELECT * FROM business_memory_overview
WHERE context_sections > 0
ORDER BY semantic_memories DESC;

-- name: Session Memory Summary
SELECT * FROM session_memory_summary
WHERE memory_count > 0
ORDER BY total_accesses DESC;

-- name: Memory Cleanup
-- Clean expired memories (run daily)
SELECT cleanup_expired_memory();

-- Consolidate old sessions (run weekly)
SELECT consolidate_session_memories(session_id)
FROM (SELECT DISTINCT session_id FROM conversation_memory) AS sessions;

-- name: Performance Monitoring
-- Check memory usage
SELECT
    schemaname,
    tablename,
    pg_size_pretty(pg_total_relation_size(schemaname||'.'||tablename)) as size
FROM pg_tables
WHERE schemaname = 'public'
  AND tablename LIKE '%memory%'
ORDER BY pg_total_relation_size(schemaname||'.'||tablename) DESC;

-- name: Index Maintenance
-- Reindex memory tables (run monthly)
REINDEX TABLE conversation_memory;
REINDEX TABLE semantic_memory;
ANALYZE conversation_memory, semantic_memory;

-- name: Health Checks
-- Memory system health
SELECT
    'conversation_memory' as table_name,
    COUNT(*) as total_records,
    COUNT(CASE WHEN expires_at < NOW() THEN 1 END) as expired_records,
    AVG(importance_score) as avg_importance
FROM conversation_memory

UNION ALL

SELECT
    'semantic_memory' as table_name,
    COUNT(*) as total_records,
    0 as expired_records,
    AVG(relevance_score) as avg_importance
FROM semantic_memory;

-- name: Debug Queries
-- Check table existence
SELECT table_name FROM information_schema.tables
WHERE table_schema = 'public' AND table_name LIKE '%memory%';

-- Check index existence
SELECT indexname, tablename
FROM pg_indexes
WHERE schemaname = 'public' AND tablename LIKE '%memory%';

-- Check function existence
SELECT routine_name
FROM information_schema.routines
WHERE routine_schema = 'public' AND routine_name LIKE '%memory%';

-- name: Find User's Most Important Memories
SELECT cm.*,
       EXTRACT(EPOCH FROM (NOW() - cm.created_at))/3600 as hours_old,
       cm.importance_score * EXP(-EXTRACT(EPOCH FROM (NOW() - cm.last_accessed_at))/(24*3600)) as decayed_score
FROM conversation_memory cm
WHERE cm.user_id = 'user-uuid-here'
  AND cm.memory_type IN ('short_term', 'long_term')
ORDER BY decayed_score DESC, cm.importance_score DESC
LIMIT 20;

-- name: Semantic Search with Similarity Threshold
SELECT sm.*,
       1 - (sm.embedding_vector <=> '[0.1,0.2,...]'::vector) as similarity_score
FROM semantic_memory sm
WHERE sm.session_id = 'session-123'
  AND 1 - (sm.embedding_vector <=> '[0.1,0.2,...]'::vector) > 0.7
ORDER BY similarity_score DESC
LIMIT 10;

-- name: Business Context with Memory Integration
SELECT b.name,
       b.category,
       COUNT(bcs.id) as context_sections,
       COUNT(cm.id) as memories,
       AVG(cm.importance_score) as avg_memory_importance
FROM businesses b
LEFT JOIN business_context_sections bcs ON b.id = bcs.business_id AND bcs.is_active = true
LEFT JOIN conversation_memory cm ON cm.user_id = b.user_id AND cm.memory_type = 'long_term'
WHERE b.is_active = true
GROUP BY b.id, b.name, b.category
ORDER BY context_sections DESC, avg_memory_importance DESC;

-- name: User Behavior Analysis
SELECT
    ucp.user_id,
    jsonb_object_keys(ucp.preferences) as preference_type,
    ucp.preferences->jsonb_object_keys(ucp.preferences) as preference_value,
    COUNT(cm.id) as memory_count,
    AVG(cm.importance_score) as avg_importance
FROM user_context_profiles ucp
LEFT JOIN conversation_memory cm ON ucp.user_id = cm.user_id
GROUP BY ucp.user_id, jsonb_object_keys(ucp.preferences), ucp.preferences
ORDER BY memory_count DESC;

-- name: Session Activity Summary
SELECT
    cm.session_id,
    COUNT(*) as total_memories,
    COUNT(CASE WHEN cm.memory_type = 'short_term' THEN 1 END) as short_term,
    COUNT(CASE WHEN cm.memory_type = 'long_term' THEN 1 END) as long_term,
    COUNT(CASE WHEN cm.memory_type = 'archived' THEN 1 END) as archived,
    AVG(cm.importance_score) as avg_importance,
    MAX(cm.last_accessed_at) as last_activity,
    SUM(cm.access_count) as total_accesses
FROM conversation_memory cm
GROUP BY cm.session_id
HAVING COUNT(*) > 0
ORDER BY last_activity DESC, total_memories DESC;

-- name: Memory System Health (KPI)
SELECT
    'Memory Health' as metric,
    COUNT(CASE WHEN memory_type = 'short_term' THEN 1 END) as active_memories,
    COUNT(CASE WHEN expires_at < NOW() THEN 1 END) as expired_memories,
    AVG(importance_score) as avg_importance,
    COUNT(DISTINCT session_id) as active_sessions
FROM conversation_memory
WHERE created_at > NOW() - INTERVAL '7 days';

-- name: Memory Cleanup Job (Daily)
-- Run daily at 2 AM
SELECT cleanup_expired_memory();

-- name: Memory Consolidation Job (Weekly)
-- Run weekly on Sunday
SELECT consolidate_session_memories(session_id)
FROM (
    SELECT DISTINCT session_id
    FROM conversation_memory
    WHERE memory_type = 'short_term'
      AND created_at < NOW() - INTERVAL '5 days'
) AS old_sessions;

-- name: Weekly Memory Optimization
-- Consolidate old memories
SELECT consolidate_session_memories(session_id)
FROM (
    SELECT DISTINCT session_id
    FROM conversation_memory
    WHERE memory_type = 'short_term'
      AND created_at < NOW() - INTERVAL '7 days'
) AS sessions;

-- Update relevance scores
UPDATE context_relevance
SET relevance_score = relevance_score * decay_factor,
    last_calculated = NOW()
WHERE last_calculated < NOW() - INTERVAL '1 day';

-- Archive low-relevance memories
UPDATE conversation_memory
SET memory_type = 'archived',
    expires_at = NOW() + INTERVAL '90 days'
WHERE importance_score < 0.3
  AND memory_type = 'long_term'
  AND created_at < NOW() - INTERVAL '30 days';

-- name: Monthly Performance Optimization
-- Rebuild indexes
REINDEX TABLE conversation_memory;
REINDEX TABLE semantic_memory;
REINDEX TABLE business_context_sections;

-- Update statistics
ANALYZE conversation_memory, semantic_memory, business_context_sections;

-- Vacuum tables
VACUUM ANALYZE conversation_memory;
VACUUM ANALYZE semantic_memory;
VACUUM ANALYZE business_context_sections;

-- name: Check System Health
-- Overall system status
SELECT
    'System Health' as check_type,
    COUNT(*) as total_tables,
    SUM(CASE WHEN table_name LIKE '%memory%' THEN 1 ELSE 0 END) as memory_tables,
    (SELECT COUNT(*) FROM conversation_memory) as active_memories,
    (SELECT COUNT(*) FROM business_context_sections WHERE is_active = true) as active_sections
FROM information_schema.tables
WHERE table_schema = 'public';

-- name: Memory Performance Check
-- Memory performance metrics
SELECT
    'Memory Performance' as metric,
    AVG(EXTRACT(EPOCH FROM (NOW() - created_at))) / 3600 as avg_age_hours,
    COUNT(CASE WHEN importance_score > 0.7 THEN 1 END) as high_importance,
    COUNT(CASE WHEN access_count > 10 THEN 1 END) as frequently_accessed,
    COUNT(CASE WHEN expires_at < NOW() THEN 1 END) as expired_count
FROM conversation_memory;

-- name: Issue 1: High Memory Usage
-- Increase cleanup frequency
SELECT cleanup_expired_memory();

-- Adjust importance thresholds
UPDATE conversation_memory
SET importance_score = importance_score * 0.9
WHERE importance_score < 0.5;

-- Archive old memories
UPDATE conversation_memory
SET memory_type = 'archived'
WHERE created_at < NOW() - INTERVAL '60 days';

-- name: Issue 2: Slow Semantic Search
-- Rebuild vector indexes
REINDEX INDEX idx_semantic_memory_vector;

-- Add more workers for indexing
SET maintenance_work_mem = '256MB';

-- name: Issue 3: Memory Fragmentation
-- Vacuum and reindex
VACUUM FULL conversation_memory;
REINDEX TABLE conversation_memory;

-- Cluster on importance score
CLUSTER conversation_memory USING idx_conversation_memory_importance;

-- name: Personalized Business Recommendations
SELECT b.*,
       cm.context_value->>'food_preference' as user_preference,
       sm.relevance_score as semantic_match,
       bcs.section_content->>'rating' as business_rating
FROM businesses b
JOIN business_context_sections bcs ON b.id = bcs.business_id
LEFT JOIN conversation_memory cm ON cm.user_id = b.user_id
LEFT JOIN semantic_memory sm ON sm.session_id = cm.session_id
WHERE b.category = 'restaurant'
  AND cm.context_key = 'food_preference'
  AND sm.content_type = 'business_info'
ORDER BY sm.relevance_score DESC, bcs.section_content->>'rating' DESC;

-- name: Context-Aware Conversation Continuation
SELECT cm.context_value,
       sm.content_text,
       cr.relevance_score,
       EXTRACT(EPOCH FROM (NOW() - cm.last_accessed_at))/3600 as hours_since_access
FROM conversation_memory cm
JOIN semantic_memory sm ON cm.session_id = sm.session_id
JOIN context_relevance cr ON cm.session_id = cr.session_id
WHERE cm.memory_type IN ('short_term', 'long_term')
  AND cr.relevance_score > 0.6
ORDER BY cr.relevance_score DESC, cm.last_accessed_at DESC
LIMIT 15;

-- name: Business Intelligence Dashboard
SELECT
    DATE_TRUNC('day', cm.created_at) as date,
    COUNT(DISTINCT cm.session_id) as unique_sessions,
    COUNT(cm.id) as total_memories,
    AVG(cm.importance_score) as avg_importance,
    COUNT(CASE WHEN cm.memory_type = 'long_term' THEN 1 END) as long_term_memories,
    COUNT(DISTINCT b.id) as businesses_with_context
FROM conversation_memory cm
LEFT JOIN businesses b ON cm.user_id = b.user_id
WHERE cm.created_at >= NOW() - INTERVAL '30 days'
GROUP BY DATE_TRUNC('day', cm.created_at)
ORDER BY date DESC;

-- name: Vector Extension Not Available
-- Enable in Supabase SQL Editor
CREATE EXTENSION IF NOT EXISTS vector;
