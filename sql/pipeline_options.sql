-- Creating, listing, altering and dropping pipelines; option validation.
SELECT adstream.create_pipeline('clicks');
SELECT adstream.create_pipeline('views-eu', max_event_age => '6 hours',
    max_future_skew => '1 minute', attribution_window => '0',
    max_message_bytes => 4096);
SELECT name, max_event_age, max_future_skew, dedup_horizon, attribution_window,
       max_message_bytes
  FROM adstream.list_pipelines();

-- errors name the option and say what is wrong
SELECT adstream.create_pipeline('clicks');
SELECT adstream.create_pipeline('bad', max_event_age => '0');
SELECT adstream.create_pipeline('bad', max_event_age => '-1 hour');
SELECT adstream.create_pipeline('bad', max_event_age => '1 month');
SELECT adstream.create_pipeline('bad', max_future_skew => '-1 second');
SELECT adstream.create_pipeline('bad', dedup_horizon => '1 hour');
SELECT adstream.create_pipeline('bad', attribution_window => '4000 days');
SELECT adstream.create_pipeline('bad', max_message_bytes => 10);
SELECT adstream.create_pipeline('bad', max_message_bytes => 200000000);
SELECT adstream.create_pipeline('bad', max_event_age => NULL);
SELECT adstream.create_pipeline('bad', max_event_age => 'forever');
SELECT adstream.create_pipeline(NULL);
SELECT adstream.create_pipeline('');
SELECT adstream.create_pipeline('Upper');
SELECT adstream.create_pipeline('9starts_with_digit');
SELECT adstream.create_pipeline(repeat('x', 64));
SELECT count(*) FROM adstream.pipeline WHERE name = 'bad';

-- alter changes only what is given, validates the result
SELECT adstream.alter_pipeline('clicks', max_future_skew => '10 minutes');
SELECT adstream.alter_pipeline('clicks', max_event_age => '3 days');  -- horizon 2 days < 3 days
SELECT adstream.alter_pipeline('clicks', max_event_age => '3 days', dedup_horizon => '3 days');
SELECT adstream.alter_pipeline('nope', max_event_age => '1 day');
SELECT name, max_event_age, max_future_skew, dedup_horizon, updated_at >= created_at AS touched
  FROM adstream.list_pipelines() WHERE name = 'clicks';

-- drop
SELECT adstream.drop_pipeline('views-eu');
SELECT adstream.drop_pipeline('views-eu');
SELECT adstream.drop_pipeline('views-eu', if_exists => true);
SELECT name FROM adstream.list_pipelines();
