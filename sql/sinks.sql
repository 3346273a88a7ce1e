-- Sinks: where a pipeline's output records go.  Options are validated and
-- named in errors; the outbox is pruned only up to what every sink of the
-- pipeline has delivered.  (The producer workers themselves are tested
-- against the embedded Kafka by tests/kafka_output.sh.)
SELECT adstream.create_pipeline('snk', region => 'eu', emit_mode => 'changes',
       topic => 'ads', bootstrap_servers => 'localhost:1', enabled => false);
SELECT adstream.create_pipeline('snk-no-kafka', emit_mode => 'changes');

SELECT adstream.create_sink('snk', 'pinot', topic => 'ad-stats');
SELECT adstream.create_sink('snk', 'hive', topic => 'ad-stats-hive',
       bootstrap_servers => 'broker-a:9092,broker-b:9092', progress_topic => 'my-progress',
       kafka_properties => '{"linger.ms": 20, "compression.type": "zstd"}',
       batch_records => 500, transactional_id => 'hive-writer-1');
SELECT name, topic, bootstrap_servers, progress_topic, transactional_id, kafka_properties,
       batch_records, enabled, acked_id
  FROM adstream.sink ORDER BY name;

-- errors name what is wrong
SELECT adstream.create_sink('nope', 'x', topic => 't');
SELECT adstream.create_sink('snk', 'Bad Name', topic => 't');
SELECT adstream.create_sink('snk', 'pinot', topic => 'again');
SELECT adstream.create_sink('snk', 'dup-txn', topic => 't', transactional_id => 'hive-writer-1');
SELECT adstream.create_sink('snk', 'x', topic => 'bad topic');
SELECT adstream.create_sink('snk', 'x', topic => NULL);
SELECT adstream.create_sink('snk', 'x', topic => 't', progress_topic => 't');
SELECT adstream.create_sink('snk-no-kafka', 'x', topic => 't');
SELECT adstream.create_sink('snk', 'x', topic => 't', batch_records => 0);
SELECT adstream.create_sink('snk', 'x', topic => 't', kafka_properties => '{"transactional.id": "mine"}');
SELECT adstream.create_sink('snk', 'x', topic => 't', kafka_properties => '{"partitioner": "random"}');
SELECT adstream.create_sink('snk', 'x', topic => 't', kafka_properties => '{"no.such.property": 1}');
SELECT adstream.create_sink('snk', 'x', topic => 't', transactional_id => 'has space');

-- alter keeps what is not given; the transactional id never changes
SELECT adstream.alter_sink('snk', 'pinot', batch_records => 2000, enabled => false);
SELECT adstream.alter_sink('snk', 'pinot', topic => 'ad-stats');
SELECT adstream.alter_sink('snk', 'pinot', progress_topic => 'ad-stats');
SELECT adstream.alter_sink('snk', 'missing', enabled => true);
SELECT name, topic, batch_records, enabled, transactional_id FROM adstream.sink ORDER BY name;

-- the status view lists every sink, running or not
SELECT pipeline, sink, topic, worker_pid, worker_state, acked_id, backlog
  FROM adstream.sink_status ORDER BY sink;

-- pruning: rows go once every sink of the pipeline has them
SET TimeZone = 'UTC';
SELECT adstream.fold_minute_stats() >= 0 AS folded_earlier_suites;
SELECT * FROM feed('snk', ARRAY[ev('s1', 'impression', 'ad-1', '2026-01-01T00:05:10Z'),
                                 ev('s2', 'impression', 'ad-2', '2026-01-01T00:05:10Z')]);
SELECT adstream.fold_minute_stats() AS moved;
SELECT count(*) AS outbox_rows FROM adstream.outbox o JOIN adstream.pipeline p ON p.id = o.pipeline_id
 WHERE p.name = 'snk';
SELECT sink, backlog FROM adstream.sink_status ORDER BY sink;
-- (what a producer does after each Kafka commit, here by hand: pinot
-- has both rows, hive none)
UPDATE adstream.sink SET acked_id = (SELECT max(o.id) FROM adstream.outbox o
                                       JOIN adstream.pipeline p ON p.id = o.pipeline_id
                                      WHERE p.name = 'snk')
 WHERE name = 'pinot';
SELECT adstream.prune_outbox('snk') AS pruned;
SELECT count(*) AS still_held_for_hive FROM adstream.outbox o JOIN adstream.pipeline p ON p.id = o.pipeline_id
 WHERE p.name = 'snk';
SELECT sink, backlog FROM adstream.sink_status ORDER BY sink;

SELECT adstream.drop_sink('snk', 'hive');
-- with hive gone, what pinot delivered can go
SELECT adstream.prune_outbox() AS pruned;
SELECT adstream.drop_sink('snk', 'hive');
SELECT adstream.drop_sink('snk', 'hive', if_exists => true);
-- dropping the pipeline drops its sinks
SELECT adstream.drop_pipeline('snk');
SELECT count(*) AS sinks_left FROM adstream.sink;
SELECT adstream.drop_pipeline('snk-no-kafka');
