-- The Kafka source of a pipeline: validation with errors that name the
-- option, and credentials hidden from everyone but superusers.
\set VERBOSITY terse
-- topic and bootstrap servers go together
SELECT adstream.create_pipeline('k1', topic => 'ads');
SELECT adstream.create_pipeline('k1', bootstrap_servers => 'localhost:9092');
SELECT adstream.create_pipeline('k1', topic => 'bad topic', bootstrap_servers => 'localhost:9092');
SELECT adstream.create_pipeline('k1', topic => repeat('t', 250), bootstrap_servers => 'localhost:9092');
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1, b:2');
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1',
                                start_from => 'middle');
-- properties: an object of strings, numbers or booleans librdkafka accepts
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1',
                                kafka_properties => '["x"]');
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1',
                                kafka_properties => '{"no.such.property": "1"}');
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1',
                                kafka_properties => '{"session.timeout.ms": "soon"}');
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1',
                                kafka_properties => '{"security.protocol": {"x": 1}}');
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1',
                                kafka_properties => '{"fetch.wait.max.ms": null}');
-- the ones exactly-once depends on are adstream's
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1',
                                kafka_properties => '{"isolation.level": "read_uncommitted"}');
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1',
                                kafka_properties => '{"enable.auto.commit": true}');
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1',
                                kafka_properties => '{"group.id": "mine"}');
-- batch bounds
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1', batch_size => 0);
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1',
                                batch_time => '2 minutes');
SELECT adstream.create_pipeline('k1', topic => 'ads', bootstrap_servers => 'a:1',
                                enabled => NULL);

-- a valid source, with numbers and booleans as values
SELECT adstream.create_pipeline('k1', topic => 'ads.events-v1',
    bootstrap_servers => 'broker1:9092,broker2:9092', start_from => 'latest',
    kafka_properties => '{"fetch.wait.max.ms": 10, "security.protocol": "sasl_ssl",
                          "sasl.mechanisms": "PLAIN", "sasl.username": "ads",
                          "sasl.password": "s3cret", "check.crcs": true}',
    batch_size => 5000, batch_time => '50 ms', enabled => false);
SELECT name, topic, bootstrap_servers, start_from, kafka_properties, batch_size,
       batch_time, enabled
  FROM adstream.list_pipelines() WHERE name = 'k1';

-- alter keeps what it is not given, and validates the result
SELECT adstream.alter_pipeline('k1', enabled => true, batch_size => 20000);
SELECT adstream.alter_pipeline('k1', kafka_properties => '{"api.version.request": "maybe"}');
SELECT topic, batch_size, enabled, kafka_properties ->> 'sasl.password' AS password
  FROM adstream.list_pipelines() WHERE name = 'k1';

-- a role allowed to list pipelines sees property names, not their values
CREATE ROLE ads_lister;
GRANT USAGE ON SCHEMA adstream TO ads_lister;
GRANT EXECUTE ON FUNCTION adstream.list_pipelines() TO ads_lister;
SET SESSION AUTHORIZATION ads_lister;
SELECT name, kafka_properties FROM adstream.list_pipelines() WHERE name = 'k1';
RESET SESSION AUTHORIZATION;
DROP OWNED BY ads_lister;
DROP ROLE ads_lister;

-- workers: 1 to 16
SELECT adstream.create_pipeline('k2', topic => 'ads', bootstrap_servers => 'a:1', workers => 0);
SELECT adstream.create_pipeline('k2', topic => 'ads', bootstrap_servers => 'a:1', workers => 17);
SELECT adstream.create_pipeline('k2', topic => 'ads', bootstrap_servers => 'a:1', workers => 4,
                                enabled => false);
SELECT adstream.alter_pipeline('k2', workers => 2);
SELECT name, workers FROM adstream.list_pipelines() WHERE name = 'k2';
