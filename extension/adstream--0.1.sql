/* extension/adstream--0.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION adstream" to load this file. \quit

-- Every text value adstream stores comes from UTF-8 JSON.  Refuse to install
-- where it would have to be transcoded (and could fail mid-batch).
DO $$
BEGIN
	IF pg_catalog.getdatabaseencoding() <> 'UTF8' THEN
		RAISE EXCEPTION 'adstream requires a database with UTF8 encoding, not %',
			pg_catalog.getdatabaseencoding()
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'Create the database with ENCODING ''UTF8''.';
	END IF;
END
$$;

-- The schema belongs to the extension, so DROP EXTENSION removes it.
CREATE SCHEMA adstream;
COMMENT ON SCHEMA adstream IS 'adstream: exactly-once ad event processing';
REVOKE ALL ON SCHEMA adstream FROM PUBLIC;

-------------------------------------------------------------------------------
-- Types
-------------------------------------------------------------------------------

CREATE TYPE adstream.event_type AS ENUM ('impression', 'click');
COMMENT ON TYPE adstream.event_type IS
	'Kind of an ad event: an impression (the ad was shown) or a click.';

-------------------------------------------------------------------------------
-- Configuration
-------------------------------------------------------------------------------

CREATE SEQUENCE adstream.pipeline_id_seq AS integer;

CREATE TABLE adstream.pipeline (
	id					integer NOT NULL DEFAULT nextval('adstream.pipeline_id_seq')
						PRIMARY KEY,
	name				text COLLATE "C" NOT NULL UNIQUE
						CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
	kind				text NOT NULL DEFAULT 'ad_events'
						CHECK (kind IN ('ad_events', 'orders', 'union')),
	records				text CHECK (records IN ('ad_minute_stats', 'attributed_orders')),
	max_event_age		interval NOT NULL,
	max_future_skew		interval NOT NULL,
	dedup_horizon		interval NOT NULL,
	attribution_window	interval NOT NULL,
	max_message_bytes	integer NOT NULL,
	topic				text COLLATE "C",
	bootstrap_servers	text,
	start_from			text NOT NULL DEFAULT 'earliest'
						CHECK (start_from IN ('earliest', 'latest')),
	kafka_properties	jsonb NOT NULL DEFAULT '{}',
	batch_size			integer NOT NULL DEFAULT 10000,
	batch_time			interval NOT NULL DEFAULT '100 milliseconds',
	workers				integer NOT NULL DEFAULT 1,
	enabled				boolean NOT NULL DEFAULT true,
	region				text COLLATE "C" NOT NULL DEFAULT 'default'
						CHECK (region ~ '^[A-Za-z0-9_.-]{1,63}$'),
	emit_mode			text NOT NULL DEFAULT 'none'
						CHECK (emit_mode IN ('none', 'changes', 'final')),
	allowed_lateness	interval NOT NULL DEFAULT '10 seconds',
	idle_timeout		interval NOT NULL DEFAULT '1 minute',
	minute_retention	interval NOT NULL DEFAULT '7 days',
	hour_retention		interval NOT NULL DEFAULT '90 days',
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now(),
	CHECK (dedup_horizon >= max_event_age),
	CHECK ((topic IS NULL) = (bootstrap_servers IS NULL)),
	CHECK ((kind = 'union') = (records IS NOT NULL)),
	CHECK (kind <> 'union' OR topic IS NULL)
);
ALTER SEQUENCE adstream.pipeline_id_seq OWNED BY adstream.pipeline.id;
COMMENT ON TABLE adstream.pipeline IS
	'Pipeline definitions: one row per named stream of ad events and its options. Change it with adstream.create_pipeline/alter_pipeline/drop_pipeline.';
COMMENT ON COLUMN adstream.pipeline.max_event_age IS
	'Events older than this (event time against the Kafka timestamp, or the transaction time) are dead-lettered as too_old.';
COMMENT ON COLUMN adstream.pipeline.max_future_skew IS
	'Events whose event time is further ahead of the reference time than this are dead-lettered as too_far_in_future.';
COMMENT ON COLUMN adstream.pipeline.dedup_horizon IS
	'How long after its event time an event id is remembered for deduplication; never shorter than max_event_age.';
COMMENT ON COLUMN adstream.pipeline.attribution_window IS
	'How long clean events are kept for order attribution (events are kept for the longer of this and dedup_horizon).';
COMMENT ON COLUMN adstream.pipeline.topic IS
	'Kafka topic its consumer worker reads; NULL for a pipeline fed only through adstream.ingest().';
COMMENT ON COLUMN adstream.pipeline.bootstrap_servers IS
	'Kafka bootstrap servers (host:port, comma-separated) of the topic.';
COMMENT ON COLUMN adstream.pipeline.start_from IS
	'Where a partition with no stored offset starts: earliest or latest.';
COMMENT ON COLUMN adstream.pipeline.kafka_properties IS
	'Extra librdkafka consumer properties (a JSON object of strings), e.g. security settings. Shown only to superusers.';
COMMENT ON COLUMN adstream.pipeline.batch_size IS
	'Most messages the consumer worker applies in one transaction.';
COMMENT ON COLUMN adstream.pipeline.batch_time IS
	'Longest the consumer worker collects a batch before applying it.';
COMMENT ON COLUMN adstream.pipeline.workers IS
	'Consumer workers for the pipeline, 1 to 16; worker i takes the partitions p with p % workers = i.';
COMMENT ON COLUMN adstream.pipeline.region IS
	'The region this pipeline runs in (by default the instance''s adstream.region); part of every output record and of its UUID, so that two regions'' records of one window or order never collide. Set at creation.';
COMMENT ON COLUMN adstream.pipeline.emit_mode IS
	'none: no output records; changes: each fold writes a new version of every window it changed to adstream.outbox; final: one record when the window closes (the watermark passes its end), then a correction version for late events.';
COMMENT ON COLUMN adstream.pipeline.allowed_lateness IS
	'emit_mode final: how far behind the latest event time the watermark trails, i.e. how long a window waits for late events before it closes.';
COMMENT ON COLUMN adstream.pipeline.idle_timeout IS
	'emit_mode final: a partition without messages for this long no longer holds the watermark back.';
COMMENT ON COLUMN adstream.pipeline.kind IS
	'ad_events: impressions and clicks, counted per ad and minute; orders: orders, attributed to the ad events of another pipeline (see adstream.order_options); union: the output records of several regions, read from one Kafka cluster per region (adstream.union_source) and merged (adstream.union_record).';
COMMENT ON COLUMN adstream.pipeline.records IS
	'union pipelines: which output records they merge, ad_minute_stats (the records of ad-events pipelines) or attributed_orders (those of orders pipelines); NULL for other kinds.';
COMMENT ON COLUMN adstream.pipeline.minute_retention IS
	'Maintenance rolls 1-minute rows whose window ended longer ago than this (in consumed Kafka time) up into hourly rows; at least max_event_age, so no accepted event can land in a rolled-up minute.';
COMMENT ON COLUMN adstream.pipeline.hour_retention IS
	'Maintenance rolls hourly rows older than this up into daily rows; at least minute_retention.';
COMMENT ON COLUMN adstream.pipeline.enabled IS
	'Whether the launcher runs a consumer worker for it (it needs a topic too).';
COMMENT ON COLUMN adstream.pipeline.max_message_bytes IS
	'Messages larger than this are dead-lettered as oversized without being parsed.';

-------------------------------------------------------------------------------
-- Exactly-once input state
-------------------------------------------------------------------------------

CREATE TABLE adstream.consumed_offset (
	pipeline_id	integer NOT NULL,
	source		text COLLATE "C" NOT NULL DEFAULT '',
	topic		text COLLATE "C" NOT NULL,
	partition	integer NOT NULL CHECK (partition >= 0),
	next_offset	bigint NOT NULL CHECK (next_offset >= 0),
	max_event_time timestamptz,
	kafka_time	timestamptz,
	updated_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline_id, source, topic, partition)
);
COMMENT ON COLUMN adstream.consumed_offset.source IS
	'Which Kafka cluster the topic is in: '''' for a pipeline''s own topic; for a union pipeline, the region of the adstream.union_source read (each region''s cluster has its own offsets).';
COMMENT ON COLUMN adstream.consumed_offset.max_event_time IS
	'The latest event time of a valid message from this partition: the partition''s event-time progress, from which emit_mode final computes the pipeline''s watermark. updated_at tells when the partition last had messages (idle_timeout).';
COMMENT ON COLUMN adstream.consumed_offset.kafka_time IS
	'The latest Kafka timestamp consumed from this partition: the pipeline''s consumed Kafka time, against which maintenance expires stored state (never against the wall clock, so a consumer catching up on old messages still deduplicates them).';
COMMENT ON TABLE adstream.consumed_offset IS
	'Next Kafka offset to read per pipeline, source cluster, topic and partition, committed in the same transaction as the data its messages produced. Messages below it were already applied and are skipped.';

-------------------------------------------------------------------------------
-- Results
-------------------------------------------------------------------------------

CREATE TABLE adstream.event (
	pipeline_id		integer NOT NULL,
	event_key		uuid NOT NULL,
	event_id		text COLLATE "C" NOT NULL,
	event_type		adstream.event_type NOT NULL,
	event_time		timestamptz NOT NULL,
	user_id			text COLLATE "C" NOT NULL,
	ad_id			text COLLATE "C" NOT NULL,
	campaign_id		text COLLATE "C",
	advertiser_id	text COLLATE "C",
	store_id		text COLLATE "C",
	cost_micros		bigint,
	region			text COLLATE "C",
	expires_at		timestamptz NOT NULL
);
-- Hash indexes, not B-trees: keys and users are random, and a hash index
-- insertion touches one bucket page where a B-tree insertion descends to a
-- random leaf (several times the cost, measured).  Both are only ever
-- searched by equality.  A hash index cannot be unique: batches of one
-- pipeline take turns (they lock its adstream.pipeline row), and the core
-- stores only keys it did not find.
CREATE INDEX event_key_idx ON adstream.event USING hash (event_key);
CREATE INDEX event_user_idx ON adstream.event USING hash (user_id);
-- BRIN: events arrive roughly in event-time order, so a summary per 16
-- pages finds the expired ones for adstream.expire_events at almost no
-- cost to ingest.
CREATE INDEX event_expiry_idx ON adstream.event USING brin (expires_at)
	WITH (pages_per_range = 16);
COMMENT ON TABLE adstream.event IS
	'Every event counted, once: the dedup memory (by event_key) and the attribution window (clean events a later order can be matched against by user). Kept until expires_at = event time + the longer of dedup_horizon and attribution_window.';
COMMENT ON COLUMN adstream.event.event_key IS
	'A UUID-form event id is its own key; any other id is mapped to a name-based (SHA-1) UUID. Two messages with one key are one event.';
COMMENT ON COLUMN adstream.event.cost_micros IS
	'Cost of the event in millionths of the currency unit; NULL when the event had none.';

CREATE TABLE adstream.minute_stat (
	pipeline_id		integer NOT NULL,
	window_start	timestamptz NOT NULL,
	ad_id			text COLLATE "C" NOT NULL,
	impressions		bigint NOT NULL DEFAULT 0,
	clicks			bigint NOT NULL DEFAULT 0,
	spend_micros	bigint NOT NULL DEFAULT 0,
	emitted_version	bigint NOT NULL DEFAULT 0,
	emitted_impressions bigint NOT NULL DEFAULT 0,
	emitted_clicks	bigint NOT NULL DEFAULT 0,
	emitted_spend_micros bigint NOT NULL DEFAULT 0,
	emitted_delta_impressions bigint NOT NULL DEFAULT 0,
	emitted_delta_clicks bigint NOT NULL DEFAULT 0,
	emitted_delta_spend_micros bigint NOT NULL DEFAULT 0,
	pending			boolean NOT NULL DEFAULT false,
	updated_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline_id, window_start, ad_id)
) WITH (fillfactor = 70);
CREATE INDEX minute_stat_pending_idx ON adstream.minute_stat (pipeline_id, window_start)
	WHERE pending;
COMMENT ON COLUMN adstream.minute_stat.pending IS
	'emit_mode final: the window changed since its latest output record; it is emitted once the pipeline''s watermark passes its end.';
COMMENT ON COLUMN adstream.minute_stat.emitted_version IS
	'Version of the window''s latest output record (0: none yet). emitted_impressions, emitted_clicks and emitted_spend_micros are the totals it carried, so the next record''s deltas are exactly what changed since; emitted_delta_* are the deltas it carried.';
COMMENT ON TABLE adstream.minute_stat IS
	'1-minute tumbling-window aggregates per ad, keyed by the event time truncated to the minute (UTC), so a late event lands in its own minute. spend_micros is the sum of event costs in millionths.';
-- fillfactor 70: room on each page lets the counter updates of a fold be
-- HOT updates, which add no index entries.

CREATE TABLE adstream.minute_delta (
	pipeline_id		integer NOT NULL,
	window_start	timestamptz NOT NULL,
	ad_id			text COLLATE "C" NOT NULL,
	impressions		bigint NOT NULL,
	clicks			bigint NOT NULL,
	spend_micros	bigint NOT NULL,
	added_at		timestamptz NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.02,
		autovacuum_vacuum_insert_scale_factor = 0.02);
COMMENT ON TABLE adstream.minute_delta IS
	'Increments of the 1-minute aggregates not yet folded into adstream.minute_stat: one row per (ad, minute) touched by a batch. Append-only and unindexed, so ingest never updates a shared row; adstream.fold_minute_stats() moves them into minute_stat. The views add both.';

CREATE TABLE adstream.outbox (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	pipeline_id		integer NOT NULL,
	record_uuid		uuid NOT NULL,
	version			bigint NOT NULL,
	payload			text NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE adstream.outbox IS
	'Output records, fully materialized in the transaction that produced them, in emission order (id). A re-send of a row is byte-identical. Key: record_uuid; one row per (record_uuid, version).';
COMMENT ON COLUMN adstream.outbox.payload IS
	'The record as JSON text: record_uuid, version, pipeline, region, ad_id, window_start, window_start_ms, window_end, impressions, clicks, spend_micros, the deltas since the previous version, and final. docker/pinot holds its Pinot schema.';

CREATE TABLE adstream.sink (
	id				integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	pipeline_id		integer NOT NULL,
	name			text COLLATE "C" NOT NULL CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
	topic			text COLLATE "C" NOT NULL,
	bootstrap_servers text NOT NULL,
	progress_topic	text COLLATE "C" NOT NULL,
	transactional_id text COLLATE "C" NOT NULL UNIQUE,
	kafka_properties jsonb NOT NULL DEFAULT '{}',
	batch_records	integer NOT NULL DEFAULT 10000,
	enabled			boolean NOT NULL DEFAULT true,
	acked_id		bigint NOT NULL DEFAULT 0,
	acked_at		timestamptz,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	UNIQUE (pipeline_id, name),
	CHECK (topic <> progress_topic)
);
COMMENT ON TABLE adstream.sink IS
	'Where a pipeline''s output records go: a Kafka topic written in transactions by a producer worker, exactly once. Change it with adstream.create_sink/alter_sink/drop_sink.';
COMMENT ON COLUMN adstream.sink.acked_id IS
	'The last outbox id known committed to Kafka; written after each Kafka commit. Outbox rows up to the smallest acked_id of a pipeline''s sinks are deleted.';
COMMENT ON COLUMN adstream.sink.progress_topic IS
	'Topic whose partition 0 holds the sink''s progress records (key: transactional_id), written inside each Kafka transaction and read back when the producer starts. Best created with cleanup.policy=compact.';

CREATE TABLE adstream.dead_letter (
	id			bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	pipeline_id	integer NOT NULL,
	topic		text COLLATE "C",
	partition	integer,
	"offset"	bigint,
	kafka_ts	timestamptz,
	reason		text NOT NULL,
	detail		text NOT NULL,
	payload		bytea NOT NULL,
	received_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letter_pipeline_idx
	ON adstream.dead_letter (pipeline_id, received_at);
COMMENT ON TABLE adstream.dead_letter IS
	'Every rejected message, byte for byte, with where it came from and why it was rejected. Written in the same transaction as the batch it arrived in.';
COMMENT ON COLUMN adstream.dead_letter.reason IS
	'Machine-readable reason: oversized, invalid_utf8, malformed_json, too_deeply_nested, duplicate_field, missing_field, wrong_type, invalid_value, unknown_event_type, too_old, too_far_in_future; for union pipelines also wrong_region.';


-------------------------------------------------------------------------------
-- Rollups: minutes older than a pipeline's minute_retention become hours,
-- hours older than its hour_retention become days (adstream.rollup_stats)
-------------------------------------------------------------------------------

CREATE TABLE adstream.hour_stat (
	pipeline_id		integer NOT NULL,
	window_start	timestamptz NOT NULL,
	ad_id			text COLLATE "C" NOT NULL,
	impressions		bigint NOT NULL,
	clicks			bigint NOT NULL,
	spend_micros	bigint NOT NULL,
	PRIMARY KEY (pipeline_id, window_start, ad_id)
);
COMMENT ON TABLE adstream.hour_stat IS
	'Hourly aggregates per ad, rolled up from adstream.minute_stat rows past the pipeline''s minute_retention. The hourly and daily views add them in.';

CREATE TABLE adstream.day_stat (LIKE adstream.hour_stat INCLUDING ALL);
COMMENT ON TABLE adstream.day_stat IS
	'Daily (UTC) aggregates per ad, rolled up from adstream.hour_stat rows past the pipeline''s hour_retention.';

-------------------------------------------------------------------------------
-- Orders and their attribution
-------------------------------------------------------------------------------

CREATE TABLE adstream.order_options (
	pipeline_id			integer PRIMARY KEY,
	events_pipeline_id	integer NOT NULL,
	attribution_rule	text NOT NULL
						CHECK (attribution_rule IN ('last_click_then_view', 'last_touch', 'last_click')),
	click_window		interval NOT NULL,
	view_window			interval NOT NULL,
	grace_period		interval NOT NULL,
	enrich_function		regprocedure,
	enrich_role			name,
	enrich_timeout		interval NOT NULL,
	enrich_max_attempts	integer NOT NULL,
	enrich_backoff		interval NOT NULL,
	decided				bigint NOT NULL DEFAULT 0,
	attributed_click	bigint NOT NULL DEFAULT 0,
	attributed_view		bigint NOT NULL DEFAULT 0,
	unattributed		bigint NOT NULL DEFAULT 0,
	enriched			bigint NOT NULL DEFAULT 0,
	enrich_failed		bigint NOT NULL DEFAULT 0,
	enrich_retries		bigint NOT NULL DEFAULT 0,
	emitted				bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE adstream.order_options IS
	'Attribution options of each orders pipeline (set with adstream.create_orders_pipeline/alter_orders_pipeline), and its counters since creation (see adstream.order_status).';
COMMENT ON COLUMN adstream.order_options.events_pipeline_id IS
	'The ad-events pipeline whose stored events the orders are matched against.';
COMMENT ON COLUMN adstream.order_options.attribution_rule IS
	'last_click_then_view: the last click within click_window, else the last impression within view_window; last_touch: the later of those two; last_click: clicks only.';
COMMENT ON COLUMN adstream.order_options.grace_period IS
	'How long after it arrives an order waits before it is decided, so that ad events arriving after it (the topics are not ordered with each other) still count.';
COMMENT ON COLUMN adstream.order_options.enrich_function IS
	'Optional hook function(jsonb) returning jsonb: receives the attributed order and returns extra fields for its output record. Runs as enrich_role, within enrich_timeout; a failure is retried enrich_max_attempts times with a doubling backoff from enrich_backoff, then the order is emitted without enrichment.';

CREATE TABLE adstream.attributed_order (
	pipeline_id		integer NOT NULL,
	order_key		uuid NOT NULL,
	order_id		text COLLATE "C" NOT NULL,
	user_id			text COLLATE "C" NOT NULL,
	store_id		text COLLATE "C" NOT NULL,
	order_time		timestamptz NOT NULL,
	amount_micros	bigint NOT NULL,
	currency		text COLLATE "C" NOT NULL,
	received_at		timestamptz NOT NULL,
	state			text NOT NULL CHECK (state IN ('pending', 'enriching', 'done')),
	due_at			timestamptz NOT NULL,
	attribution		text CHECK (attribution IN ('click', 'view', 'none')),
	ad_id			text COLLATE "C",
	campaign_id		text COLLATE "C",
	advertiser_id	text COLLATE "C",
	touch_event_id	text COLLATE "C",
	touch_time		timestamptz,
	decided_at		timestamptz,
	enrichment		jsonb,
	enrichment_status text CHECK (enrichment_status IN ('none', 'ok', 'failed')),
	enrich_attempts	integer NOT NULL DEFAULT 0,
	enrich_error	text,
	version			bigint NOT NULL DEFAULT 0,
	expires_at		timestamptz NOT NULL,
	PRIMARY KEY (pipeline_id, order_key)
);
-- state leads due_at: the orders due for a decision and those due for their
-- hook are each found without reading the other's
CREATE INDEX attributed_order_due_idx ON adstream.attributed_order (pipeline_id, state, due_at)
	WHERE state <> 'done';
CREATE INDEX attributed_order_expiry_idx ON adstream.attributed_order
	USING brin (expires_at) WITH (pages_per_range = 16);
COMMENT ON TABLE adstream.attributed_order IS
	'Every order accepted, once (the dedup memory, by order_key), and what became of it: pending during its grace period, enriching while its hook is retried, done once its output record is written. Kept until expires_at = order time + the orders pipeline''s dedup_horizon.';
COMMENT ON COLUMN adstream.attributed_order.order_key IS
	'A UUID-form order id is its own key; any other id is mapped to a name-based (SHA-1) UUID. Two messages with one key are one order.';
COMMENT ON COLUMN adstream.attributed_order.due_at IS
	'When the order is looked at next: the end of its grace period while pending, the next hook attempt while enriching.';
COMMENT ON COLUMN adstream.attributed_order.attribution IS
	'click or view: the ad event (ad_id, campaign_id, advertiser_id, touch_event_id, touch_time) that earned the order; none: unattributed; NULL: not decided yet.';

CREATE TABLE adstream.revenue_minute (
	pipeline_id		integer NOT NULL,
	window_start	timestamptz NOT NULL,
	ad_id			text COLLATE "C" NOT NULL,
	currency		text COLLATE "C" NOT NULL,
	campaign_id		text COLLATE "C",
	orders			bigint NOT NULL,
	click_orders	bigint NOT NULL,
	revenue_micros	bigint NOT NULL,
	PRIMARY KEY (pipeline_id, window_start, ad_id, currency)
);
COMMENT ON TABLE adstream.revenue_minute IS
	'Attributed orders and revenue per ad, currency and minute of order time (UTC), written when orders are decided. click_orders: those attributed to a click (the rest to an impression). campaign_id: that of the event behind the most recently decided of them (an ad normally has one campaign).';
CREATE TABLE adstream.revenue_hour (LIKE adstream.revenue_minute INCLUDING ALL);
COMMENT ON TABLE adstream.revenue_hour IS
	'adstream.revenue_minute rows past the orders pipeline''s minute_retention, rolled up per hour.';
CREATE TABLE adstream.revenue_day (LIKE adstream.revenue_minute INCLUDING ALL);
COMMENT ON TABLE adstream.revenue_day IS
	'adstream.revenue_hour rows past the orders pipeline''s hour_retention, rolled up per day (UTC).';

-------------------------------------------------------------------------------
-- Maintenance bookkeeping
-------------------------------------------------------------------------------

CREATE TABLE adstream.maintenance_run (
	task			text PRIMARY KEY
					CHECK (task IN ('expire_events', 'expire_orders', 'prune_outbox', 'rollup_stats')),
	runs			bigint NOT NULL DEFAULT 0,
	rows_total		bigint NOT NULL DEFAULT 0,
	last_started	timestamptz,
	last_finished	timestamptz,
	last_rows		bigint,
	last_runner		text,
	last_error		text,
	last_error_at	timestamptz
);
INSERT INTO adstream.maintenance_run (task)
VALUES ('expire_events'), ('expire_orders'), ('prune_outbox'), ('rollup_stats');
COMMENT ON TABLE adstream.maintenance_run IS
	'When each maintenance task last ran, by whom (pg_cron, the launcher, or a manual call), how many rows it handled, and its last error. See adstream.maintenance_status.';

SELECT pg_catalog.pg_extension_config_dump('adstream.pipeline', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.pipeline_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.consumed_offset', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.event', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.minute_stat', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.minute_delta', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.sink', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.sink_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.dead_letter', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.dead_letter_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.hour_stat', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.day_stat', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.order_options', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.attributed_order', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.revenue_minute', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.revenue_hour', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.revenue_day', '');
SELECT pg_catalog.pg_extension_config_dump('adstream.maintenance_run', '');

-------------------------------------------------------------------------------
-- Pipeline management
-------------------------------------------------------------------------------

-- Raise a clear error for any option value that is out of range.
CREATE FUNCTION adstream.instance_region()
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(nullif(current_setting('adstream.region', true), ''), 'default')
$$;
COMMENT ON FUNCTION adstream.instance_region() IS
	'This instance''s region: the setting adstream.region, or ''default'' when it is not set. New pipelines take it as their region.';

CREATE FUNCTION adstream._check_int(name text, value bigint, lo bigint, hi bigint)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF value IS NULL OR value < lo OR value > hi THEN
		RAISE EXCEPTION 'option "%" must be between % and %: %', name, lo, hi,
			coalesce(value::text, 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION adstream._check_int(text, bigint, bigint, bigint) IS
	'Internal: checks that an integer option is within its bounds, naming the option.';

CREATE FUNCTION adstream._check_options(
	max_event_age interval,
	max_future_skew interval,
	dedup_horizon interval,
	attribution_window interval,
	max_message_bytes integer)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	opt record;
BEGIN
	FOR opt IN
		SELECT * FROM (VALUES
			('max_event_age', max_event_age, false),
			('max_future_skew', max_future_skew, true),
			('dedup_horizon', dedup_horizon, false),
			('attribution_window', attribution_window, true)) AS o(name, value, zero_ok)
	LOOP
		IF opt.value IS NULL THEN
			RAISE EXCEPTION 'option "%" must not be null', opt.name
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF extract(month FROM opt.value) <> 0 OR extract(year FROM opt.value) <> 0 THEN
			RAISE EXCEPTION 'option "%" must not use months or years: %', opt.name, opt.value
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Months have no fixed length; give the duration in days, e.g. ''30 days''.';
		END IF;
		IF opt.value < interval '0' OR (opt.value = interval '0' AND NOT opt.zero_ok) THEN
			RAISE EXCEPTION 'option "%" must be %: %', opt.name,
				CASE WHEN opt.zero_ok THEN 'zero or positive' ELSE 'positive' END, opt.value
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF opt.value > interval '3650 days' THEN
			RAISE EXCEPTION 'option "%" must be at most 3650 days: %', opt.name, opt.value
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END LOOP;
	IF dedup_horizon < max_event_age THEN
		RAISE EXCEPTION 'dedup_horizon (%) must be at least max_event_age (%)',
			dedup_horizon, max_event_age
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A duplicate younger than max_event_age is still accepted, so its key must still be remembered.';
	END IF;
	PERFORM adstream._check_int('max_message_bytes', max_message_bytes, 64, 104857600);
END
$$;
COMMENT ON FUNCTION adstream._check_options(interval, interval, interval, interval, integer) IS
	'Internal: validates pipeline options, raising invalid_parameter_value with the offending option named.';

CREATE FUNCTION adstream._check_kafka_properties(properties jsonb,
												 for_producer boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'adstream_check_kafka_properties'
LANGUAGE C
STABLE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION adstream._check_kafka_properties(jsonb, boolean) IS
	'Internal: checks librdkafka consumer (or, with for_producer, sink producer) properties with librdkafka itself, refusing the ones adstream sets.';

CREATE FUNCTION adstream._check_source(
	topic text,
	bootstrap_servers text,
	start_from text,
	kafka_properties jsonb,
	batch_size integer,
	batch_time interval,
	workers integer)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF (topic IS NULL) <> (bootstrap_servers IS NULL) THEN
		RAISE EXCEPTION 'options "topic" and "bootstrap_servers" go together'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give both to consume a Kafka topic, or neither to feed the pipeline with adstream.ingest().';
	END IF;
	IF topic IS NOT NULL AND topic !~ '^[A-Za-z0-9._-]{1,249}$' THEN
		RAISE EXCEPTION 'option "topic" is not a valid Kafka topic name: %', quote_literal(topic)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Kafka topic names are 1 to 249 characters: letters, digits, ".", "_" and "-".';
	END IF;
	IF bootstrap_servers IS NOT NULL AND bootstrap_servers !~ '^[^\s,]+(,[^\s,]+)*$' THEN
		RAISE EXCEPTION 'option "bootstrap_servers" must be a comma-separated list of host:port: %',
			quote_literal(bootstrap_servers)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF start_from IS NULL OR start_from NOT IN ('earliest', 'latest') THEN
		RAISE EXCEPTION 'option "start_from" must be earliest or latest: %',
			coalesce(quote_literal(start_from), 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF kafka_properties IS NULL OR jsonb_typeof(kafka_properties) <> 'object' THEN
		RAISE EXCEPTION 'option "kafka_properties" must be a JSON object of property names and values'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM adstream._check_kafka_properties(kafka_properties);
	PERFORM adstream._check_int('batch_size', batch_size, 1, 1000000);
	IF batch_time IS NULL OR batch_time < interval '1 millisecond'
	   OR batch_time > interval '1 minute' THEN
		RAISE EXCEPTION 'option "batch_time" must be between 1 millisecond and 1 minute: %',
			coalesce(batch_time::text, 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM adstream._check_int('workers', workers, 1, 16);
END
$$;
COMMENT ON FUNCTION adstream._check_source(text, text, text, jsonb, integer, interval, integer) IS
	'Internal: validates the Kafka source options of a pipeline, raising invalid_parameter_value with the offending option named.';

CREATE FUNCTION adstream._check_emit_mode(emit_mode text, allowed_lateness interval,
										  idle_timeout interval)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF allowed_lateness IS NULL OR allowed_lateness < interval '0'
	   OR allowed_lateness > interval '1 day' THEN
		RAISE EXCEPTION 'option "allowed_lateness" must be between 0 and 1 day: %',
			coalesce(allowed_lateness::text, 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF idle_timeout IS NULL OR idle_timeout <= interval '0' OR idle_timeout > interval '1 day' THEN
		RAISE EXCEPTION 'option "idle_timeout" must be positive and at most 1 day: %',
			coalesce(idle_timeout::text, 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF emit_mode IS NULL OR emit_mode NOT IN ('none', 'changes', 'final') THEN
		RAISE EXCEPTION 'option "emit_mode" must be none, changes or final: %',
			coalesce(quote_literal(emit_mode), 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION adstream._check_emit_mode(text, interval, interval) IS
	'Internal: validates the emit_mode, allowed_lateness and idle_timeout options.';

CREATE FUNCTION adstream._check_retention(max_event_age interval,
										  minute_retention interval,
										  hour_retention interval)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF minute_retention IS NULL OR minute_retention < max_event_age
	   OR minute_retention > interval '3650 days' THEN
		RAISE EXCEPTION 'option "minute_retention" must be at least max_event_age (%) and at most 3650 days: %',
			max_event_age, coalesce(minute_retention::text, 'null')
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'An event up to max_event_age old is still accepted, so its minute must still be there.';
	END IF;
	IF hour_retention IS NULL OR hour_retention < minute_retention
	   OR hour_retention > interval '3650 days' THEN
		RAISE EXCEPTION 'option "hour_retention" must be at least minute_retention (%) and at most 3650 days: %',
			minute_retention, coalesce(hour_retention::text, 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION adstream._check_retention(interval, interval, interval) IS
	'Internal: validates the minute_retention and hour_retention options.';

CREATE FUNCTION adstream.create_pipeline(
	name text,
	max_event_age interval DEFAULT '1 day',
	max_future_skew interval DEFAULT '5 minutes',
	dedup_horizon interval DEFAULT NULL,
	attribution_window interval DEFAULT '7 days',
	max_message_bytes integer DEFAULT 1048576,
	topic text DEFAULT NULL,
	bootstrap_servers text DEFAULT NULL,
	start_from text DEFAULT 'earliest',
	kafka_properties jsonb DEFAULT '{}',
	batch_size integer DEFAULT 10000,
	batch_time interval DEFAULT '100 milliseconds',
	enabled boolean DEFAULT true,
	workers integer DEFAULT 1,
	region text DEFAULT NULL,
	emit_mode text DEFAULT 'none',
	allowed_lateness interval DEFAULT '10 seconds',
	idle_timeout interval DEFAULT '1 minute',
	minute_retention interval DEFAULT NULL,
	hour_retention interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF name IS NULL OR name !~ '^[a-z][a-z0-9_-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid pipeline name: %', coalesce(quote_literal(name), 'null')
			USING ERRCODE = 'invalid_name',
				  HINT = 'A pipeline name is 1 to 63 characters: a lowercase letter, then lowercase letters, digits, "_" or "-".';
	END IF;
	dedup_horizon := coalesce(dedup_horizon, max_event_age * 2);
	region := coalesce(region, adstream.instance_region());
	PERFORM adstream._check_options(max_event_age, max_future_skew, dedup_horizon,
									attribution_window, max_message_bytes);
	minute_retention := coalesce(minute_retention, greatest(interval '7 days', max_event_age));
	hour_retention := coalesce(hour_retention, greatest(interval '90 days', minute_retention));
	PERFORM adstream._check_source(topic, bootstrap_servers, start_from,
								   kafka_properties, batch_size, batch_time, workers);
	IF enabled IS NULL THEN
		RAISE EXCEPTION 'option "enabled" must not be null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF region IS NULL OR region !~ '^[A-Za-z0-9_.-]{1,63}$' THEN
		RAISE EXCEPTION 'option "region" must be 1 to 63 letters, digits, ".", "_" or "-": %',
			coalesce(quote_literal(region), 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM adstream._check_emit_mode(emit_mode, allowed_lateness, idle_timeout);
	PERFORM adstream._check_retention(max_event_age, minute_retention, hour_retention);
	INSERT INTO adstream.pipeline AS p (name, max_event_age, max_future_skew,
		dedup_horizon, attribution_window, max_message_bytes, topic,
		bootstrap_servers, start_from, kafka_properties, batch_size, batch_time,
		enabled, workers, region, emit_mode, allowed_lateness, idle_timeout,
		minute_retention, hour_retention)
	VALUES (create_pipeline.name, create_pipeline.max_event_age,
		create_pipeline.max_future_skew, create_pipeline.dedup_horizon,
		create_pipeline.attribution_window, create_pipeline.max_message_bytes,
		create_pipeline.topic, create_pipeline.bootstrap_servers,
		create_pipeline.start_from, create_pipeline.kafka_properties,
		create_pipeline.batch_size, create_pipeline.batch_time,
		create_pipeline.enabled, create_pipeline.workers, create_pipeline.region,
		create_pipeline.emit_mode, create_pipeline.allowed_lateness,
		create_pipeline.idle_timeout, create_pipeline.minute_retention,
		create_pipeline.hour_retention);
EXCEPTION
	WHEN unique_violation THEN
		RAISE EXCEPTION 'pipeline "%" already exists', create_pipeline.name
			USING ERRCODE = 'duplicate_object';
END
$$;
COMMENT ON FUNCTION adstream.create_pipeline(text, interval, interval, interval, interval, integer, text, text, text, jsonb, integer, interval, boolean, integer, text, text, interval, interval, interval, interval) IS
	'Creates an ad-event pipeline, consuming a Kafka topic when topic and bootstrap_servers are given. region defaults to adstream.instance_region(). dedup_horizon defaults to twice max_event_age, minute_retention to the longer of 7 days and max_event_age, hour_retention to the longer of 90 days and minute_retention. Options are validated; errors name the option.';

CREATE FUNCTION adstream.alter_pipeline(
	name text,
	max_event_age interval DEFAULT NULL,
	max_future_skew interval DEFAULT NULL,
	dedup_horizon interval DEFAULT NULL,
	attribution_window interval DEFAULT NULL,
	max_message_bytes integer DEFAULT NULL,
	topic text DEFAULT NULL,
	bootstrap_servers text DEFAULT NULL,
	start_from text DEFAULT NULL,
	kafka_properties jsonb DEFAULT NULL,
	batch_size integer DEFAULT NULL,
	batch_time interval DEFAULT NULL,
	enabled boolean DEFAULT NULL,
	workers integer DEFAULT NULL,
	emit_mode text DEFAULT NULL,
	allowed_lateness interval DEFAULT NULL,
	idle_timeout interval DEFAULT NULL,
	minute_retention interval DEFAULT NULL,
	hour_retention interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p adstream.pipeline;
BEGIN
	SELECT * INTO p FROM adstream.pipeline AS x
	 WHERE x.name = alter_pipeline.name FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'pipeline "%" does not exist', alter_pipeline.name
			USING ERRCODE = 'undefined_object';
	END IF;
	IF p.kind = 'union' AND (alter_pipeline.topic IS NOT NULL
							 OR alter_pipeline.bootstrap_servers IS NOT NULL
							 OR alter_pipeline.kafka_properties IS NOT NULL
							 OR alter_pipeline.workers IS NOT NULL
							 OR alter_pipeline.emit_mode IS NOT NULL) THEN
		RAISE EXCEPTION 'pipeline "%" is a union pipeline: it reads the clusters of its sources, one worker each, and emits every new version',
			p.name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Change its sources with adstream.alter_union_source().';
	END IF;
	p.max_event_age := coalesce(alter_pipeline.max_event_age, p.max_event_age);
	p.max_future_skew := coalesce(alter_pipeline.max_future_skew, p.max_future_skew);
	p.dedup_horizon := coalesce(alter_pipeline.dedup_horizon, p.dedup_horizon);
	p.attribution_window := coalesce(alter_pipeline.attribution_window, p.attribution_window);
	p.max_message_bytes := coalesce(alter_pipeline.max_message_bytes, p.max_message_bytes);
	p.topic := coalesce(alter_pipeline.topic, p.topic);
	p.bootstrap_servers := coalesce(alter_pipeline.bootstrap_servers, p.bootstrap_servers);
	p.start_from := coalesce(alter_pipeline.start_from, p.start_from);
	p.kafka_properties := coalesce(alter_pipeline.kafka_properties, p.kafka_properties);
	p.batch_size := coalesce(alter_pipeline.batch_size, p.batch_size);
	p.batch_time := coalesce(alter_pipeline.batch_time, p.batch_time);
	p.enabled := coalesce(alter_pipeline.enabled, p.enabled);
	p.workers := coalesce(alter_pipeline.workers, p.workers);
	p.emit_mode := coalesce(alter_pipeline.emit_mode, p.emit_mode);
	p.allowed_lateness := coalesce(alter_pipeline.allowed_lateness, p.allowed_lateness);
	p.idle_timeout := coalesce(alter_pipeline.idle_timeout, p.idle_timeout);
	-- retentions not given follow a longer max_event_age (and minutes)
	p.minute_retention := coalesce(alter_pipeline.minute_retention,
								   greatest(p.minute_retention, p.max_event_age));
	p.hour_retention := coalesce(alter_pipeline.hour_retention,
								 greatest(p.hour_retention, p.minute_retention));
	PERFORM adstream._check_emit_mode(p.emit_mode, p.allowed_lateness, p.idle_timeout);
	PERFORM adstream._check_retention(p.max_event_age, p.minute_retention, p.hour_retention);
	IF EXISTS (SELECT 1 FROM adstream.order_options AS o
				WHERE o.events_pipeline_id = p.id
				  AND greatest(o.click_window, o.view_window) > p.attribution_window) THEN
		RAISE EXCEPTION 'option "attribution_window" must be at least the click_window and view_window of the orders pipelines matching against "%": %',
			p.name, p.attribution_window
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Shorten those windows first with adstream.alter_orders_pipeline().';
	END IF;
	IF p.kind = 'orders' AND p.emit_mode = 'changes' THEN
		RAISE EXCEPTION 'option "emit_mode" of an orders pipeline must be none or final: changes'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'An orders pipeline emits one record per order once it is decided.';
	END IF;
	PERFORM adstream._check_options(p.max_event_age, p.max_future_skew, p.dedup_horizon,
									p.attribution_window, p.max_message_bytes);
	PERFORM adstream._check_source(p.topic, p.bootstrap_servers, p.start_from,
								   p.kafka_properties, p.batch_size, p.batch_time,
								   p.workers);
	UPDATE adstream.pipeline AS x
	   SET max_event_age = p.max_event_age,
		   max_future_skew = p.max_future_skew,
		   dedup_horizon = p.dedup_horizon,
		   attribution_window = p.attribution_window,
		   max_message_bytes = p.max_message_bytes,
		   topic = p.topic,
		   bootstrap_servers = p.bootstrap_servers,
		   start_from = p.start_from,
		   kafka_properties = p.kafka_properties,
		   batch_size = p.batch_size,
		   batch_time = p.batch_time,
		   enabled = p.enabled,
		   workers = p.workers,
		   emit_mode = p.emit_mode,
		   allowed_lateness = p.allowed_lateness,
		   idle_timeout = p.idle_timeout,
		   minute_retention = p.minute_retention,
		   hour_retention = p.hour_retention,
		   updated_at = now()
	 WHERE x.id = p.id;
END
$$;
COMMENT ON FUNCTION adstream.alter_pipeline(text, interval, interval, interval, interval, integer, text, text, text, jsonb, integer, interval, boolean, integer, text, interval, interval, interval, interval) IS
	'Changes options of a pipeline; options left NULL keep their value (minute_retention and hour_retention grow with max_event_age when not given). Takes effect from the next batch.';

CREATE FUNCTION adstream.drop_pipeline(name text, if_exists boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	pid integer;
BEGIN
	-- Under an older snapshot the deletes below could miss rows of a batch
	-- that committed while we waited for the pipeline row, leaving orphans.
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'drop_pipeline must run at READ COMMITTED isolation'
			USING ERRCODE = 'invalid_transaction_state';
	END IF;
	IF EXISTS (SELECT 1 FROM adstream.order_options AS o
				 JOIN adstream.pipeline AS e ON e.id = o.events_pipeline_id
				 WHERE e.name = drop_pipeline.name) THEN
		RAISE EXCEPTION 'pipeline "%" is the events pipeline of orders pipeline "%"',
			drop_pipeline.name,
			(SELECT q.name FROM adstream.order_options AS o
			   JOIN adstream.pipeline AS e ON e.id = o.events_pipeline_id
			   JOIN adstream.pipeline AS q ON q.id = o.pipeline_id
			  WHERE e.name = drop_pipeline.name ORDER BY q.name LIMIT 1)
			USING ERRCODE = 'dependent_objects_still_exist',
				  HINT = 'Drop the orders pipeline first.';
	END IF;
	DELETE FROM adstream.pipeline AS x WHERE x.name = drop_pipeline.name
	RETURNING x.id INTO pid;
	IF pid IS NULL THEN
		IF if_exists THEN
			RAISE NOTICE 'pipeline "%" does not exist, skipping', drop_pipeline.name;
			RETURN;
		END IF;
		RAISE EXCEPTION 'pipeline "%" does not exist', drop_pipeline.name
			USING ERRCODE = 'undefined_object';
	END IF;
	DELETE FROM adstream.consumed_offset WHERE pipeline_id = pid;
	DELETE FROM adstream.event WHERE pipeline_id = pid;
	DELETE FROM adstream.minute_stat WHERE pipeline_id = pid;
	DELETE FROM adstream.minute_delta WHERE pipeline_id = pid;
	DELETE FROM adstream.outbox WHERE pipeline_id = pid;
	DELETE FROM adstream.sink WHERE pipeline_id = pid;
	DELETE FROM adstream.dead_letter WHERE pipeline_id = pid;
	DELETE FROM adstream.hour_stat WHERE pipeline_id = pid;
	DELETE FROM adstream.day_stat WHERE pipeline_id = pid;
	DELETE FROM adstream.order_options WHERE pipeline_id = pid;
	DELETE FROM adstream.attributed_order WHERE pipeline_id = pid;
	DELETE FROM adstream.revenue_minute WHERE pipeline_id = pid;
	DELETE FROM adstream.revenue_hour WHERE pipeline_id = pid;
	DELETE FROM adstream.revenue_day WHERE pipeline_id = pid;
	DELETE FROM adstream.union_source WHERE pipeline_id = pid;
	DELETE FROM adstream.union_record WHERE pipeline_id = pid;
END
$$;
COMMENT ON FUNCTION adstream.drop_pipeline(text, boolean) IS
	'Drops a pipeline and every row it produced (offsets, events, aggregates and their rollups, orders and attributed revenue, merged records and union sources, output records, sinks, dead letters). Refuses an ad-events pipeline that an orders pipeline matches against. Waits for batches of that pipeline in progress.';

CREATE FUNCTION adstream.prune_outbox(pipeline text DEFAULT NULL, max_rows integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	pruned bigint;
BEGIN
	IF max_rows IS NOT NULL THEN
		PERFORM adstream._check_max_rows(max_rows);
	END IF;
	WITH delivered AS (
		SELECT s.pipeline_id, min(s.acked_id) AS acked_id
		  FROM adstream.sink AS s
		  JOIN adstream.pipeline AS p ON p.id = s.pipeline_id
		 WHERE prune_outbox.pipeline IS NULL OR p.name = prune_outbox.pipeline
		 GROUP BY s.pipeline_id
	), gone AS (
		DELETE FROM adstream.outbox AS o
		 WHERE o.id = ANY (ARRAY(
				SELECT x.id FROM adstream.outbox AS x
				  JOIN delivered AS d ON x.pipeline_id = d.pipeline_id AND x.id <= d.acked_id
				 ORDER BY x.id
				 LIMIT prune_outbox.max_rows))
		RETURNING 1
	)
	SELECT count(*) INTO pruned FROM gone;
	RETURN pruned;
END
$$;
COMMENT ON FUNCTION adstream.prune_outbox(text, integer) IS
	'Deletes the output records that every sink of the pipeline (of every pipeline with sinks, when NULL) has committed to Kafka, at most max_rows of them (all, when NULL), and returns how many. Producer workers call it after each delivery; records of a pipeline without sinks stay.';

CREATE FUNCTION adstream._check_sink(
	topic text,
	bootstrap_servers text,
	progress_topic text,
	kafka_properties jsonb,
	batch_records integer,
	enabled boolean)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	opt record;
BEGIN
	FOR opt IN
		SELECT * FROM (VALUES ('topic', topic), ('progress_topic', progress_topic)) AS o(name, value)
	LOOP
		IF opt.value IS NULL OR opt.value !~ '^[A-Za-z0-9._-]{1,249}$' THEN
			RAISE EXCEPTION 'option "%" must be a Kafka topic name (1 to 249 letters, digits, ".", "_" or "-"): %',
				opt.name, coalesce(quote_literal(opt.value), 'null')
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END LOOP;
	IF topic = progress_topic THEN
		RAISE EXCEPTION 'options "topic" and "progress_topic" must differ: %', topic
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF bootstrap_servers IS NULL OR btrim(bootstrap_servers) = '' THEN
		RAISE EXCEPTION 'option "bootstrap_servers" must name at least one broker'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give it, or give the pipeline bootstrap_servers to default to.';
	END IF;
	IF kafka_properties IS NULL THEN
		RAISE EXCEPTION 'option "kafka_properties" must not be null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM adstream._check_kafka_properties(kafka_properties, true);
	PERFORM adstream._check_int('batch_records', batch_records, 1, 100000);
	IF enabled IS NULL THEN
		RAISE EXCEPTION 'option "enabled" must not be null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION adstream._check_sink(text, text, text, jsonb, integer, boolean) IS
	'Internal: validates sink options, raising invalid_parameter_value with the offending option named.';

CREATE FUNCTION adstream.create_sink(
	pipeline text,
	name text,
	topic text,
	bootstrap_servers text DEFAULT NULL,
	progress_topic text DEFAULT 'adstream-progress',
	kafka_properties jsonb DEFAULT '{}',
	batch_records integer DEFAULT 10000,
	enabled boolean DEFAULT true,
	transactional_id text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p adstream.pipeline;
BEGIN
	SELECT * INTO p FROM adstream.pipeline AS x WHERE x.name = create_sink.pipeline;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'pipeline "%" does not exist', create_sink.pipeline
			USING ERRCODE = 'undefined_object';
	END IF;
	IF name IS NULL OR name !~ '^[a-z][a-z0-9_-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid sink name: %', coalesce(quote_literal(name), 'null')
			USING ERRCODE = 'invalid_name',
				  HINT = 'A sink name is 1 to 63 characters: a lowercase letter, then lowercase letters, digits, "_" or "-".';
	END IF;
	bootstrap_servers := coalesce(bootstrap_servers, p.bootstrap_servers);
	transactional_id := coalesce(transactional_id,
								 format('adstream-%s-%s-%s', p.region, p.name, name));
	IF transactional_id !~ '^[A-Za-z0-9._-]{1,200}$' THEN
		RAISE EXCEPTION 'option "transactional_id" must be 1 to 200 letters, digits, ".", "_" or "-": %',
			quote_literal(transactional_id)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM adstream._check_sink(topic, bootstrap_servers, progress_topic, kafka_properties,
								 batch_records, enabled);
	INSERT INTO adstream.sink (pipeline_id, name, topic, bootstrap_servers, progress_topic,
							   transactional_id, kafka_properties, batch_records, enabled)
	VALUES (p.id, create_sink.name, create_sink.topic, create_sink.bootstrap_servers,
			create_sink.progress_topic, create_sink.transactional_id,
			create_sink.kafka_properties, create_sink.batch_records, create_sink.enabled);
EXCEPTION
	WHEN unique_violation THEN
		RAISE EXCEPTION 'sink "%" of pipeline "%" already exists, or its transactional_id "%" is taken',
			create_sink.name, create_sink.pipeline, create_sink.transactional_id
			USING ERRCODE = 'duplicate_object';
END
$$;
COMMENT ON FUNCTION adstream.create_sink(text, text, text, text, text, jsonb, integer, boolean, text) IS
	'Sends a pipeline''s output records to a Kafka topic, exactly once, with a producer worker. bootstrap_servers defaults to the pipeline''s; transactional_id to adstream-<region>-<pipeline>-<sink>. A new sink starts with the oldest output record still in the outbox.';

CREATE FUNCTION adstream.alter_sink(
	pipeline text,
	name text,
	topic text DEFAULT NULL,
	bootstrap_servers text DEFAULT NULL,
	progress_topic text DEFAULT NULL,
	kafka_properties jsonb DEFAULT NULL,
	batch_records integer DEFAULT NULL,
	enabled boolean DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s adstream.sink;
BEGIN
	SELECT x.* INTO s FROM adstream.sink AS x
	  JOIN adstream.pipeline AS p ON p.id = x.pipeline_id
	 WHERE p.name = alter_sink.pipeline AND x.name = alter_sink.name
	   FOR NO KEY UPDATE OF x;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'sink "%" of pipeline "%" does not exist', alter_sink.name,
			alter_sink.pipeline
			USING ERRCODE = 'undefined_object';
	END IF;
	s.topic := coalesce(alter_sink.topic, s.topic);
	s.bootstrap_servers := coalesce(alter_sink.bootstrap_servers, s.bootstrap_servers);
	s.progress_topic := coalesce(alter_sink.progress_topic, s.progress_topic);
	s.kafka_properties := coalesce(alter_sink.kafka_properties, s.kafka_properties);
	s.batch_records := coalesce(alter_sink.batch_records, s.batch_records);
	s.enabled := coalesce(alter_sink.enabled, s.enabled);
	PERFORM adstream._check_sink(s.topic, s.bootstrap_servers, s.progress_topic,
								 s.kafka_properties, s.batch_records, s.enabled);
	UPDATE adstream.sink AS x
	   SET topic = s.topic,
		   bootstrap_servers = s.bootstrap_servers,
		   progress_topic = s.progress_topic,
		   kafka_properties = s.kafka_properties,
		   batch_records = s.batch_records,
		   enabled = s.enabled,
		   updated_at = now()
	 WHERE x.id = s.id;
END
$$;
COMMENT ON FUNCTION adstream.alter_sink(text, text, text, text, text, jsonb, integer, boolean) IS
	'Changes options of a sink; options left NULL keep their value. Its producer restarts with them and resumes after the last committed transaction (the transactional_id never changes).';

CREATE FUNCTION adstream.drop_sink(pipeline text, name text, if_exists boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	sid integer;
BEGIN
	DELETE FROM adstream.sink AS x
	 USING adstream.pipeline AS p
	 WHERE p.id = x.pipeline_id AND p.name = drop_sink.pipeline AND x.name = drop_sink.name
	RETURNING x.id INTO sid;
	IF sid IS NULL THEN
		IF if_exists THEN
			RAISE NOTICE 'sink "%" of pipeline "%" does not exist, skipping', drop_sink.name,
				drop_sink.pipeline;
			RETURN;
		END IF;
		RAISE EXCEPTION 'sink "%" of pipeline "%" does not exist', drop_sink.name,
			drop_sink.pipeline
			USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
COMMENT ON FUNCTION adstream.drop_sink(text, text, boolean) IS
	'Drops a sink; its producer stops. Output records it alone still held are deleted by the next delivery of another sink of the pipeline, or stay in the outbox if none is left.';

CREATE FUNCTION adstream.list_pipelines()
RETURNS TABLE (
	name text,
	kind text,
	max_event_age interval,
	max_future_skew interval,
	dedup_horizon interval,
	attribution_window interval,
	max_message_bytes integer,
	topic text,
	bootstrap_servers text,
	start_from text,
	kafka_properties jsonb,
	batch_size integer,
	batch_time interval,
	enabled boolean,
	workers integer,
	region text,
	emit_mode text,
	allowed_lateness interval,
	idle_timeout interval,
	minute_retention interval,
	hour_retention interval,
	created_at timestamptz,
	updated_at timestamptz)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT p.name, p.kind, p.max_event_age, p.max_future_skew, p.dedup_horizon,
		   p.attribution_window, p.max_message_bytes, p.topic, p.bootstrap_servers,
		   p.start_from,
		   -- property values may be credentials: only superusers see them
		   CASE WHEN (SELECT r.rolsuper FROM pg_roles AS r WHERE r.rolname = session_user)
				THEN p.kafka_properties
				ELSE (SELECT coalesce(jsonb_object_agg(k, '********'), '{}')
						FROM jsonb_object_keys(p.kafka_properties) AS k) END,
		   p.batch_size, p.batch_time, p.enabled, p.workers, p.region, p.emit_mode,
		   p.allowed_lateness, p.idle_timeout, p.minute_retention, p.hour_retention,
		   p.created_at, p.updated_at
	  FROM adstream.pipeline AS p
	 ORDER BY p.name
$$;
COMMENT ON FUNCTION adstream.list_pipelines() IS
	'Lists pipelines and their options.';

-------------------------------------------------------------------------------
-- The processing core, callable from SQL
-------------------------------------------------------------------------------

CREATE FUNCTION adstream.ingest(
	pipeline text,
	messages bytea[],
	topic text DEFAULT NULL,
	partitions integer[] DEFAULT NULL,
	offsets bigint[] DEFAULT NULL,
	kafka_timestamps timestamptz[] DEFAULT NULL,
	source text DEFAULT NULL,
	OUT accepted bigint,
	OUT duplicates bigint,
	OUT rejected bigint,
	OUT skipped bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'adstream_ingest'
LANGUAGE C
VOLATILE
PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION adstream.ingest(text, bytea[], text, integer[], bigint[], timestamptz[], text) IS
	'Runs a batch of raw ad-event messages through the processing core in the current transaction: validates, deduplicates, stores the new events (for dedup and attribution), appends their 1-minute aggregate increments and dead-letters rejects. With topic/partitions/offsets it also advances adstream.consumed_offset and skips messages below the stored offset. For a union pipeline the messages are output records and source names the region whose cluster they come from (required). Returns accepted, duplicate, rejected and skipped counts.';

CREATE FUNCTION adstream.window_uuid(region text, ad_id text, window_start timestamptz)
RETURNS uuid
AS 'MODULE_PATHNAME', 'adstream_window_uuid'
LANGUAGE C
IMMUTABLE
STRICT
PARALLEL SAFE;
-- (no SET search_path: it runs no SQL, and a SET clause would cost every
-- call of it in the fold a configuration save and restore)
COMMENT ON FUNCTION adstream.window_uuid(text, text, timestamptz) IS
	'The UUID of the output record of an ad''s 1-minute window: name-based (SHA-1, version 5) on (region, ad id, window start). Every version of the window''s record shares it.';

CREATE FUNCTION adstream._wake_sinks()
RETURNS void
AS 'MODULE_PATHNAME', 'adstream_wake_sinks'
LANGUAGE C
VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION adstream._wake_sinks() IS
	'Internal: wakes the producer workers when the calling transaction commits (it wrote outbox rows).';

CREATE FUNCTION adstream.watermark(pipeline text)
RETURNS timestamptz
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	-- the slowest partition that is not idle; when all are idle, the newest
	SELECT coalesce(min(o.max_event_time) FILTER (WHERE o.updated_at > now() - p.idle_timeout),
					max(o.max_event_time)) - p.allowed_lateness
	  FROM adstream.pipeline AS p
	  JOIN adstream.consumed_offset AS o ON o.pipeline_id = p.id
	 WHERE p.name = watermark.pipeline AND o.max_event_time IS NOT NULL
	 GROUP BY p.allowed_lateness
$$;
COMMENT ON FUNCTION adstream.watermark(text) IS
	'The event-time watermark of a pipeline: the latest event time of its slowest partition that had messages within idle_timeout (of the newest partition when all are idle), minus allowed_lateness. NULL before any event with Kafka coordinates. With emit_mode final, a window closes once the watermark reaches its end.';

CREATE FUNCTION adstream._record_payload(
	record_uuid uuid, version bigint, pipeline text, region text, ad_id text,
	window_start timestamptz, impressions bigint, clicks bigint, spend_micros bigint,
	delta_impressions bigint, delta_clicks bigint, delta_spend_micros bigint, final boolean)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_build_object(
			   'record_uuid', record_uuid,
			   'version', version,
			   'pipeline', pipeline,
			   'region', region,
			   'ad_id', ad_id,
			   'window_start', to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
			   'window_start_ms', (extract(epoch FROM window_start) * 1000)::bigint,
			   'window_end', to_char((window_start + interval '1 minute') AT TIME ZONE 'UTC',
									 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
			   'impressions', impressions,
			   'clicks', clicks,
			   'spend_micros', spend_micros,
			   'delta_impressions', delta_impressions,
			   'delta_clicks', delta_clicks,
			   'delta_spend_micros', delta_spend_micros,
			   'final', final)::text
$$;
COMMENT ON FUNCTION adstream._record_payload(uuid, bigint, text, text, text, timestamptz, bigint, bigint, bigint, bigint, bigint, bigint, boolean) IS
	'Internal: the JSON text of an output record (see docker/pinot for its schema).';

CREATE FUNCTION adstream.fold_minute_stats(max_rows integer DEFAULT 1000000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	folded bigint;
	records bigint;
	closed bigint := 0;
BEGIN
	IF max_rows IS NULL OR max_rows < 1 THEN
		RAISE EXCEPTION 'max_rows must be a positive integer'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- Folds take turns: the lock conflicts only with itself and with writers
	-- of minute_stat (folds and drop_pipeline), never with ingest or readers.
	-- Holding it, a fold deletes each increment it adds, in one statement.
	LOCK TABLE adstream.minute_stat IN SHARE ROW EXCLUSIVE MODE;
	-- Every writer of the outbox holds this lock until it commits, so that
	-- outbox ids become visible in id order (the producers rely on it).
	LOCK TABLE adstream.outbox IN SHARE ROW EXCLUSIVE MODE;
	WITH moved AS (
		DELETE FROM adstream.minute_delta AS d
		 WHERE d.ctid = ANY (ARRAY(SELECT x.ctid FROM adstream.minute_delta AS x
								   LIMIT max_rows))
		RETURNING d.pipeline_id, d.window_start, d.ad_id,
				  d.impressions, d.clicks, d.spend_micros
	), grouped AS (
		SELECT m.pipeline_id, m.window_start, m.ad_id,
			   sum(m.impressions)::bigint AS impressions,
			   sum(m.clicks)::bigint AS clicks,
			   sum(m.spend_micros)::bigint AS spend_micros,
			   (q.emit_mode = 'changes')::int AS emit,
			   q.emit_mode = 'final' AS pending
		  FROM moved AS m
		  JOIN adstream.pipeline AS q ON q.id = m.pipeline_id
		 GROUP BY m.pipeline_id, m.window_start, m.ad_id, q.emit_mode
	), merged AS (
		-- emitted_version carries the row's emit flag (1 or 0) into the
		-- update, where emitting windows take a new version and record totals
		INSERT INTO adstream.minute_stat AS s
			   (pipeline_id, window_start, ad_id, impressions, clicks, spend_micros,
				emitted_version, emitted_impressions, emitted_clicks, emitted_spend_micros,
				emitted_delta_impressions, emitted_delta_clicks, emitted_delta_spend_micros,
				pending)
		SELECT g.pipeline_id, g.window_start, g.ad_id, g.impressions, g.clicks,
			   g.spend_micros, g.emit, g.impressions * g.emit, g.clicks * g.emit,
			   g.spend_micros * g.emit, g.impressions * g.emit, g.clicks * g.emit,
			   g.spend_micros * g.emit, g.pending
		  FROM grouped AS g
		 ORDER BY g.pipeline_id, g.window_start, g.ad_id
		ON CONFLICT (pipeline_id, window_start, ad_id) DO UPDATE
		   SET impressions = s.impressions + excluded.impressions,
			   clicks = s.clicks + excluded.clicks,
			   spend_micros = s.spend_micros + excluded.spend_micros,
			   emitted_version = s.emitted_version + excluded.emitted_version,
			   -- (every right-hand side sees the row as it was before)
			   emitted_delta_impressions = CASE WHEN excluded.emitted_version = 1
									THEN s.impressions + excluded.impressions - s.emitted_impressions
									ELSE s.emitted_delta_impressions END,
			   emitted_delta_clicks = CASE WHEN excluded.emitted_version = 1
									THEN s.clicks + excluded.clicks - s.emitted_clicks
									ELSE s.emitted_delta_clicks END,
			   emitted_delta_spend_micros = CASE WHEN excluded.emitted_version = 1
									THEN s.spend_micros + excluded.spend_micros - s.emitted_spend_micros
									ELSE s.emitted_delta_spend_micros END,
			   emitted_impressions = CASE WHEN excluded.emitted_version = 1
										  THEN s.impressions + excluded.impressions
										  ELSE s.emitted_impressions END,
			   emitted_clicks = CASE WHEN excluded.emitted_version = 1
									 THEN s.clicks + excluded.clicks
									 ELSE s.emitted_clicks END,
			   emitted_spend_micros = CASE WHEN excluded.emitted_version = 1
										   THEN s.spend_micros + excluded.spend_micros
										   ELSE s.emitted_spend_micros END,
			   pending = s.pending OR excluded.pending,
			   updated_at = now()
		RETURNING s.pipeline_id, s.window_start, s.ad_id, s.impressions, s.clicks,
				  s.spend_micros, s.emitted_version, s.emitted_delta_impressions,
				  s.emitted_delta_clicks, s.emitted_delta_spend_micros
	), emitted AS (
		-- emit_mode changes: a new version of every window this fold changed,
		-- its deltas measured from the previous version
		INSERT INTO adstream.outbox (pipeline_id, record_uuid, version, payload)
		SELECT r.pipeline_id, r.record_uuid, r.emitted_version,
			   adstream._record_payload(r.record_uuid, r.emitted_version, r.pipeline,
										r.region, r.ad_id, r.window_start, r.impressions,
										r.clicks, r.spend_micros,
										r.emitted_delta_impressions, r.emitted_delta_clicks,
										r.emitted_delta_spend_micros, false)
		  FROM (SELECT m.*, p.name AS pipeline, p.region,
					   adstream.window_uuid(p.region, m.ad_id, m.window_start) AS record_uuid
				  FROM merged AS m
				  JOIN adstream.pipeline AS p ON p.id = m.pipeline_id AND p.emit_mode = 'changes') AS r
		 ORDER BY r.pipeline_id, r.window_start, r.ad_id
		RETURNING 1
	)
	SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM emitted)
	  INTO folded, records;

	-- emit_mode final: every changed window the watermark has passed gets a
	-- record (its first at close, a correction after late events)
	IF EXISTS (SELECT 1 FROM adstream.pipeline WHERE emit_mode = 'final') THEN
		WITH closing AS (
			UPDATE adstream.minute_stat AS s
			   SET emitted_version = s.emitted_version + 1,
				   emitted_delta_impressions = s.impressions - s.emitted_impressions,
				   emitted_delta_clicks = s.clicks - s.emitted_clicks,
				   emitted_delta_spend_micros = s.spend_micros - s.emitted_spend_micros,
				   emitted_impressions = s.impressions,
				   emitted_clicks = s.clicks,
				   emitted_spend_micros = s.spend_micros,
				   pending = false
			  FROM (SELECT p.id, adstream.watermark(p.name) AS watermark
					  FROM adstream.pipeline AS p WHERE p.emit_mode = 'final') AS w
			 WHERE s.pending AND s.pipeline_id = w.id
			   AND s.window_start + interval '1 minute' <= w.watermark
			RETURNING s.*
		), emitted AS (
			INSERT INTO adstream.outbox (pipeline_id, record_uuid, version, payload)
			SELECT r.pipeline_id, r.record_uuid, r.emitted_version,
				   adstream._record_payload(r.record_uuid, r.emitted_version, r.pipeline,
											r.region, r.ad_id, r.window_start, r.impressions,
											r.clicks, r.spend_micros,
											r.emitted_delta_impressions, r.emitted_delta_clicks,
											r.emitted_delta_spend_micros, true)
			  FROM (SELECT c.*, p.name AS pipeline, p.region,
						   adstream.window_uuid(p.region, c.ad_id, c.window_start) AS record_uuid
					  FROM closing AS c JOIN adstream.pipeline AS p ON p.id = c.pipeline_id) AS r
			 ORDER BY r.pipeline_id, r.window_start, r.ad_id
			RETURNING 1
		)
		SELECT count(*) INTO closed FROM emitted;
	END IF;
	IF records + closed > 0 THEN
		PERFORM adstream._wake_sinks();
	END IF;
	RETURN folded;
END
$$;
COMMENT ON FUNCTION adstream.fold_minute_stats(integer) IS
	'Moves at most max_rows increments from adstream.minute_delta into adstream.minute_stat, in one transaction, and returns how many it moved. For pipelines with emit_mode changes, it writes a new version of every window it changed to adstream.outbox; with emit_mode final, a record of every changed window the watermark has passed (final true). All in the same transaction. Idempotent; concurrent folds take turns and never block ingest; the views show the same totals before and after.';

-------------------------------------------------------------------------------
-- Live views
-------------------------------------------------------------------------------

CREATE VIEW adstream.minute_total AS
SELECT u.pipeline_id,
	   u.window_start,
	   u.ad_id,
	   sum(u.impressions)::bigint AS impressions,
	   sum(u.clicks)::bigint AS clicks,
	   sum(u.spend_micros)::bigint AS spend_micros,
	   max(u.updated_at) AS updated_at
  FROM (SELECT pipeline_id, window_start, ad_id, impressions, clicks,
			   spend_micros, updated_at
		  FROM adstream.minute_stat
		UNION ALL
		SELECT pipeline_id, window_start, ad_id, impressions, clicks,
			   spend_micros, added_at
		  FROM adstream.minute_delta) AS u
 GROUP BY u.pipeline_id, u.window_start, u.ad_id;
COMMENT ON VIEW adstream.minute_total IS
	'Current 1-minute totals per (pipeline id, minute, ad): adstream.minute_stat plus the increments not yet folded from adstream.minute_delta.';

CREATE VIEW adstream.ad_minute_stats AS
SELECT p.name AS pipeline,
	   s.ad_id,
	   s.window_start,
	   s.window_start + interval '1 minute' AS window_end,
	   s.impressions,
	   s.clicks,
	   (s.spend_micros / 1000000.0)::numeric(20,6) AS spend,
	   CASE WHEN s.impressions > 0
			THEN round(s.clicks::numeric / s.impressions, 6) END AS ctr,
	   s.updated_at
  FROM adstream.minute_total AS s
  JOIN adstream.pipeline AS p ON p.id = s.pipeline_id;
COMMENT ON VIEW adstream.ad_minute_stats IS
	'Live per-ad, per-minute impressions, clicks, spend and click-through rate (clicks / impressions; NULL without impressions).';

CREATE VIEW adstream.ad_hourly_stats AS
SELECT p.name AS pipeline,
	   s.ad_id,
	   s.window_start,
	   s.window_start + interval '1 hour' AS window_end,
	   sum(s.impressions)::bigint AS impressions,
	   sum(s.clicks)::bigint AS clicks,
	   (sum(s.spend_micros) / 1000000.0)::numeric(20,6) AS spend,
	   CASE WHEN sum(s.impressions) > 0
			THEN round(sum(s.clicks)::numeric / sum(s.impressions), 6) END AS ctr
  FROM (SELECT pipeline_id, date_trunc('hour', window_start, 'UTC') AS window_start, ad_id,
			   impressions, clicks, spend_micros
		  FROM adstream.minute_total
		UNION ALL
		SELECT pipeline_id, window_start, ad_id, impressions, clicks, spend_micros
		  FROM adstream.hour_stat) AS s
  JOIN adstream.pipeline AS p ON p.id = s.pipeline_id
 GROUP BY p.name, s.ad_id, s.window_start;
COMMENT ON VIEW adstream.ad_hourly_stats IS
	'Per-ad hourly totals (hours in UTC): the live minutes of adstream.ad_minute_stats and the hours rolled up from minutes past minute_retention.';

CREATE VIEW adstream.ad_daily_stats AS
SELECT p.name AS pipeline,
	   s.ad_id,
	   s.window_start,
	   s.window_start + interval '1 day' AS window_end,
	   sum(s.impressions)::bigint AS impressions,
	   sum(s.clicks)::bigint AS clicks,
	   (sum(s.spend_micros) / 1000000.0)::numeric(20,6) AS spend,
	   CASE WHEN sum(s.impressions) > 0
			THEN round(sum(s.clicks)::numeric / sum(s.impressions), 6) END AS ctr
  FROM (SELECT pipeline_id, date_trunc('day', window_start, 'UTC') AS window_start, ad_id,
			   impressions, clicks, spend_micros
		  FROM adstream.minute_total
		UNION ALL
		SELECT pipeline_id, date_trunc('day', window_start, 'UTC'), ad_id, impressions, clicks,
			   spend_micros
		  FROM adstream.hour_stat
		UNION ALL
		SELECT pipeline_id, window_start, ad_id, impressions, clicks, spend_micros
		  FROM adstream.day_stat) AS s
  JOIN adstream.pipeline AS p ON p.id = s.pipeline_id
 GROUP BY p.name, s.ad_id, s.window_start;
COMMENT ON VIEW adstream.ad_daily_stats IS
	'Per-ad daily totals (days in UTC): live minutes, rolled-up hours and rolled-up days together.';

CREATE FUNCTION adstream._worker_status()
RETURNS TABLE (
	pipeline_id integer,
	worker_index integer,
	pid integer,
	state text,
	started_at timestamptz,
	batches bigint,
	messages bigint,
	accepted bigint,
	duplicates bigint,
	rejected bigint,
	skipped bigint,
	last_commit timestamptz,
	last_error text,
	last_error_at timestamptz,
	partition integer,
	end_offset bigint,
	latency_p50_ms integer,
	latency_p99_ms integer,
	version bigint)
AS 'MODULE_PATHNAME', 'adstream_worker_status'
LANGUAGE C
VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION adstream._worker_status() IS
	'Internal: what the consumer workers report in shared memory, per pipeline and partition (see adstream.pipeline_status).';

CREATE VIEW adstream.pipeline_status AS
WITH w AS (
		-- workers of each pipeline as it is now (not of an earlier version)
		SELECT s.* FROM adstream._worker_status() AS s
		  JOIN adstream.pipeline AS q ON q.id = s.pipeline_id
		   AND s.version = (extract(epoch FROM q.updated_at) * 1000000)::int8),
	 -- one row per worker, then per pipeline: counters add up over workers
	 workers AS (SELECT DISTINCT ON (w.pipeline_id, w.worker_index) * FROM w
				  ORDER BY w.pipeline_id, w.worker_index),
	 pipeline_workers AS (
		SELECT ws.pipeline_id,
			   min(ws.pid) FILTER (WHERE ws.pid IS NOT NULL) AS pid,
			   min(ws.state) FILTER (WHERE ws.pid IS NOT NULL) AS state,
			   sum(ws.accepted)::bigint AS accepted,
			   sum(ws.duplicates)::bigint AS duplicates,
			   sum(ws.rejected)::bigint AS rejected,
			   sum(ws.batches)::bigint AS batches,
			   max(ws.last_commit) AS last_commit,
			   (array_agg(ws.last_error ORDER BY ws.last_error_at DESC NULLS LAST))[1] AS last_error,
			   max(ws.last_error_at) AS last_error_at,
			   max(ws.latency_p50_ms) AS latency_p50_ms,
			   max(ws.latency_p99_ms) AS latency_p99_ms
		  FROM workers AS ws GROUP BY ws.pipeline_id)
SELECT p.name AS pipeline,
	   p.topic,
	   parts.partition,
	   coalesce(e.pid, pw.pid) AS worker_pid,
	   CASE WHEN e.pid IS NOT NULL THEN e.state
			WHEN pw.pid IS NOT NULL THEN pw.state
			WHEN p.topic IS NULL THEN 'no topic'
			WHEN NOT p.enabled THEN 'disabled'
			ELSE 'not running' END AS worker_state,
	   o.next_offset,
	   e.end_offset,
	   greatest(e.end_offset - coalesce(o.next_offset, 0), 0) AS lag,
	   pw.accepted,
	   pw.duplicates,
	   pw.rejected,
	   pw.batches,
	   pw.last_commit,
	   pw.last_error,
	   pw.last_error_at,
	   pw.latency_p50_ms,
	   pw.latency_p99_ms
  FROM adstream.pipeline AS p
  LEFT JOIN LATERAL (
		SELECT co.partition FROM adstream.consumed_offset AS co
		 WHERE co.pipeline_id = p.id AND co.topic = p.topic
		UNION
		SELECT w.partition FROM w
		 WHERE w.pipeline_id = p.id AND w.partition IS NOT NULL
		   AND w.pid IS NOT NULL) AS parts ON true
  LEFT JOIN adstream.consumed_offset AS o
	ON o.pipeline_id = p.id AND o.topic = p.topic AND o.partition = parts.partition
  LEFT JOIN w AS e
	ON e.pipeline_id = p.id AND e.partition = parts.partition AND e.pid IS NOT NULL
  LEFT JOIN pipeline_workers AS pw ON pw.pipeline_id = p.id;
COMMENT ON VIEW adstream.pipeline_status IS
	'Per pipeline and partition: the consumer worker''s pid and state, the stored next offset, the broker''s end offset and the lag, and the worker''s counters (since the server started or the pipeline last changed), last commit and last error. Counters are per pipeline (added over its workers), repeated on each of its partitions; worker_pid and worker_state are those of the worker that owns the partition. latency_p50_ms/latency_p99_ms: from a message''s Kafka timestamp to the commit of its batch, recent minutes weighted most.';

CREATE FUNCTION adstream._sink_status()
RETURNS TABLE (
	sink_id integer,
	version bigint,
	pid integer,
	state text,
	started_at timestamptz,
	transactions bigint,
	aborted bigint,
	fenced bigint,
	records bigint,
	sent_id bigint,
	last_commit timestamptz,
	last_error text,
	last_error_at timestamptz,
	latency_p50_ms integer,
	latency_p99_ms integer)
AS 'MODULE_PATHNAME', 'adstream_sink_status'
LANGUAGE C
VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION adstream._sink_status() IS
	'Internal: what the producer workers report in shared memory (see adstream.sink_status).';

CREATE VIEW adstream.sink_status AS
SELECT p.name AS pipeline,
	   k.name AS sink,
	   k.topic,
	   k.transactional_id,
	   w.pid AS worker_pid,
	   CASE WHEN w.pid IS NOT NULL THEN w.state
			WHEN NOT k.enabled THEN 'disabled'
			ELSE 'not running' END AS worker_state,
	   k.acked_id,
	   k.acked_at,
	   (SELECT count(*) FROM adstream.outbox AS o
		 WHERE o.pipeline_id = k.pipeline_id AND o.id > k.acked_id) AS backlog,
	   w.transactions,
	   w.records,
	   w.aborted,
	   w.fenced,
	   w.last_commit,
	   w.last_error,
	   w.last_error_at,
	   w.latency_p50_ms,
	   w.latency_p99_ms
  FROM adstream.sink AS k
  JOIN adstream.pipeline AS p ON p.id = k.pipeline_id
  LEFT JOIN adstream._sink_status() AS w
	ON w.sink_id = k.id AND w.version = (extract(epoch FROM k.updated_at) * 1000000)::int8;
COMMENT ON VIEW adstream.sink_status IS
	'Per sink: its producer worker''s pid and state, the last outbox id committed to Kafka (acked_id), the records still to send (backlog), and the worker''s counters since it started with the sink''s current options: committed transactions and their records, transactions aborted and sent again, times fenced by a newer producer, last commit and last error. latency_p50_ms/latency_p99_ms: from an output record''s creation to the Kafka commit that holds it.';

-------------------------------------------------------------------------------
-- Orders pipelines: attribution, enrichment, emission
-------------------------------------------------------------------------------

CREATE FUNCTION adstream._now()
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'adstream_now_sql'
LANGUAGE C
STABLE
PARALLEL SAFE;
COMMENT ON FUNCTION adstream._now() IS
	'Internal: the time adstream works with: the transaction start, or adstream.clock_override when a test set it.';

CREATE FUNCTION adstream.order_uuid(region text, order_id text)
RETURNS uuid
AS 'MODULE_PATHNAME', 'adstream_order_uuid'
LANGUAGE C
IMMUTABLE
STRICT
PARALLEL SAFE;
COMMENT ON FUNCTION adstream.order_uuid(text, text) IS
	'The UUID of an attributed order''s output record: name-based (SHA-1, version 5) on (region, order id), so every version of the order''s record shares it and two regions'' records never collide.';

CREATE FUNCTION adstream._check_order_options(
	events_pipeline_id integer,
	attribution_rule text,
	click_window interval,
	view_window interval,
	grace_period interval,
	enrich_timeout interval,
	enrich_max_attempts integer,
	enrich_backoff interval)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	keep interval;
	opt record;
BEGIN
	IF attribution_rule IS NULL
	   OR attribution_rule NOT IN ('last_click_then_view', 'last_touch', 'last_click') THEN
		RAISE EXCEPTION 'option "attribution_rule" must be last_click_then_view, last_touch or last_click: %',
			coalesce(quote_literal(attribution_rule), 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT p.attribution_window INTO keep FROM adstream.pipeline AS p
	 WHERE p.id = events_pipeline_id;
	FOR opt IN
		SELECT * FROM (VALUES ('click_window', click_window, interval '1 microsecond', keep),
							  ('view_window', view_window, interval '0', keep),
							  ('grace_period', grace_period, interval '0', interval '1 day'),
							  ('enrich_timeout', enrich_timeout, interval '1 millisecond', interval '1 hour'),
							  ('enrich_backoff', enrich_backoff, interval '1 millisecond', interval '1 day'))
			AS o(name, value, lo, hi)
	LOOP
		IF opt.value IS NULL OR opt.value < opt.lo OR opt.value > opt.hi
		   OR extract(month FROM opt.value) <> 0 OR extract(year FROM opt.value) <> 0 THEN
			-- (a RAISE option may not be NULL: no HINT where there is none)
			IF opt.name IN ('click_window', 'view_window') THEN
				RAISE EXCEPTION 'option "%" must be between % and %: %', opt.name, opt.lo, opt.hi,
					coalesce(opt.value::text, 'null')
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'The events pipeline keeps its events for its attribution_window; raise that first.';
			END IF;
			RAISE EXCEPTION 'option "%" must be between % and %: %', opt.name, opt.lo, opt.hi,
				coalesce(opt.value::text, 'null')
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END LOOP;
	PERFORM adstream._check_int('enrich_max_attempts', enrich_max_attempts, 1, 100);
END
$$;
COMMENT ON FUNCTION adstream._check_order_options(integer, text, interval, interval, interval, interval, integer, interval) IS
	'Internal: validates the attribution options of an orders pipeline, raising invalid_parameter_value with the offending option named.';

CREATE FUNCTION adstream._enrich_function(fn text)
RETURNS regprocedure
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	proc regprocedure;
BEGIN
	IF fn IS NULL OR fn = '' THEN
		RETURN NULL;
	END IF;
	proc := to_regprocedure(CASE WHEN fn LIKE '%(%' THEN fn ELSE fn || '(jsonb)' END);
	IF proc IS NULL THEN
		RAISE EXCEPTION 'enrichment function %(jsonb) does not exist', fn
			USING ERRCODE = 'undefined_function',
				  HINT = 'Give a schema-qualified function that takes one jsonb argument and returns jsonb.';
	END IF;
	IF (SELECT p.prorettype <> 'jsonb'::regtype OR p.proretset OR p.pronargs <> 1
			   OR p.proargtypes[0] <> 'jsonb'::regtype
		  FROM pg_proc AS p WHERE p.oid = proc) THEN
		RAISE EXCEPTION 'enrichment function % must take one jsonb argument and return jsonb', proc
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT has_function_privilege(session_user, proc, 'EXECUTE') THEN
		RAISE EXCEPTION 'role "%" may not execute enrichment function %', session_user, proc
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN proc;
END
$$;
COMMENT ON FUNCTION adstream._enrich_function(text) IS
	'Internal: resolves an enrichment hook name to a function(jsonb) returning jsonb that the calling role may execute.';

CREATE FUNCTION adstream.create_orders_pipeline(
	name text,
	events_pipeline text,
	topic text DEFAULT NULL,
	bootstrap_servers text DEFAULT NULL,
	attribution_rule text DEFAULT 'last_click_then_view',
	click_window interval DEFAULT '7 days',
	view_window interval DEFAULT '1 day',
	grace_period interval DEFAULT '30 seconds',
	enrich_function text DEFAULT NULL,
	enrich_timeout interval DEFAULT '5 seconds',
	enrich_max_attempts integer DEFAULT 5,
	enrich_backoff interval DEFAULT '1 second',
	emit_mode text DEFAULT 'final',
	max_event_age interval DEFAULT '1 day',
	max_future_skew interval DEFAULT '5 minutes',
	dedup_horizon interval DEFAULT NULL,
	max_message_bytes integer DEFAULT 1048576,
	start_from text DEFAULT 'earliest',
	kafka_properties jsonb DEFAULT '{}',
	batch_size integer DEFAULT 10000,
	batch_time interval DEFAULT '100 milliseconds',
	enabled boolean DEFAULT true,
	workers integer DEFAULT 1,
	minute_retention interval DEFAULT NULL,
	hour_retention interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ev adstream.pipeline;
	proc regprocedure;
BEGIN
	SELECT * INTO ev FROM adstream.pipeline AS p WHERE p.name = events_pipeline FOR KEY SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'events pipeline "%" does not exist', events_pipeline
			USING ERRCODE = 'undefined_object';
	END IF;
	IF ev.kind <> 'ad_events' THEN
		RAISE EXCEPTION 'pipeline "%" is an orders pipeline, not an ad-events pipeline', events_pipeline
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF emit_mode IS NULL OR emit_mode NOT IN ('none', 'final') THEN
		RAISE EXCEPTION 'option "emit_mode" of an orders pipeline must be none or final: %',
			coalesce(quote_literal(emit_mode), 'null')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'An orders pipeline emits one record per order once it is decided.';
	END IF;
	PERFORM adstream._check_order_options(ev.id, attribution_rule, click_window, view_window,
										  grace_period, enrich_timeout, enrich_max_attempts,
										  enrich_backoff);
	proc := adstream._enrich_function(enrich_function);
	PERFORM adstream.create_pipeline(name => name, max_event_age => max_event_age,
		max_future_skew => max_future_skew, dedup_horizon => dedup_horizon,
		attribution_window => interval '0', max_message_bytes => max_message_bytes,
		topic => topic, bootstrap_servers => bootstrap_servers, start_from => start_from,
		kafka_properties => kafka_properties, batch_size => batch_size,
		batch_time => batch_time, enabled => enabled, workers => workers,
		region => ev.region, emit_mode => emit_mode, minute_retention => minute_retention,
		hour_retention => hour_retention);
	UPDATE adstream.pipeline AS p SET kind = 'orders' WHERE p.name = create_orders_pipeline.name;
	INSERT INTO adstream.order_options (pipeline_id, events_pipeline_id, attribution_rule,
		click_window, view_window, grace_period, enrich_function, enrich_role, enrich_timeout,
		enrich_max_attempts, enrich_backoff)
	SELECT p.id, ev.id, attribution_rule, click_window, view_window, grace_period, proc,
		   CASE WHEN proc IS NOT NULL THEN session_user END, enrich_timeout,
		   enrich_max_attempts, enrich_backoff
	  FROM adstream.pipeline AS p WHERE p.name = create_orders_pipeline.name;
END
$$;
COMMENT ON FUNCTION adstream.create_orders_pipeline(text, text, text, text, text, interval, interval, interval, text, interval, integer, interval, text, interval, interval, interval, integer, text, jsonb, integer, interval, boolean, integer, interval, interval) IS
	'Creates an orders pipeline: orders (from a Kafka topic, or adstream.ingest()) are deduplicated by order id, wait grace_period, are attributed to the ad events of events_pipeline by the same user for the same store, optionally enriched by a hook, and emitted (emit_mode final) as one record each. The region is the events pipeline''s.';

CREATE FUNCTION adstream.alter_orders_pipeline(
	name text,
	attribution_rule text DEFAULT NULL,
	click_window interval DEFAULT NULL,
	view_window interval DEFAULT NULL,
	grace_period interval DEFAULT NULL,
	enrich_function text DEFAULT NULL,
	enrich_timeout interval DEFAULT NULL,
	enrich_max_attempts integer DEFAULT NULL,
	enrich_backoff interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	o adstream.order_options;
BEGIN
	SELECT x.* INTO o FROM adstream.order_options AS x
	  JOIN adstream.pipeline AS p ON p.id = x.pipeline_id
	 WHERE p.name = alter_orders_pipeline.name FOR NO KEY UPDATE OF x;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'orders pipeline "%" does not exist', alter_orders_pipeline.name
			USING ERRCODE = 'undefined_object';
	END IF;
	o.attribution_rule := coalesce(alter_orders_pipeline.attribution_rule, o.attribution_rule);
	o.click_window := coalesce(alter_orders_pipeline.click_window, o.click_window);
	o.view_window := coalesce(alter_orders_pipeline.view_window, o.view_window);
	o.grace_period := coalesce(alter_orders_pipeline.grace_period, o.grace_period);
	o.enrich_timeout := coalesce(alter_orders_pipeline.enrich_timeout, o.enrich_timeout);
	o.enrich_max_attempts := coalesce(alter_orders_pipeline.enrich_max_attempts, o.enrich_max_attempts);
	o.enrich_backoff := coalesce(alter_orders_pipeline.enrich_backoff, o.enrich_backoff);
	IF alter_orders_pipeline.enrich_function IS NOT NULL THEN
		-- '' removes the hook
		o.enrich_function := adstream._enrich_function(alter_orders_pipeline.enrich_function);
		o.enrich_role := CASE WHEN o.enrich_function IS NOT NULL THEN session_user END;
	END IF;
	PERFORM adstream._check_order_options(o.events_pipeline_id, o.attribution_rule,
										  o.click_window, o.view_window, o.grace_period,
										  o.enrich_timeout, o.enrich_max_attempts,
										  o.enrich_backoff);
	UPDATE adstream.order_options AS x
	   SET attribution_rule = o.attribution_rule, click_window = o.click_window,
		   view_window = o.view_window, grace_period = o.grace_period,
		   enrich_function = o.enrich_function, enrich_role = o.enrich_role,
		   enrich_timeout = o.enrich_timeout, enrich_max_attempts = o.enrich_max_attempts,
		   enrich_backoff = o.enrich_backoff
	 WHERE x.pipeline_id = o.pipeline_id;
	UPDATE adstream.pipeline AS p SET updated_at = now() WHERE p.id = o.pipeline_id;
END
$$;
COMMENT ON FUNCTION adstream.alter_orders_pipeline(text, text, interval, interval, interval, text, interval, integer, interval) IS
	'Changes the attribution options of an orders pipeline; options left NULL keep their value, and enrich_function => '''' removes the hook. Orders not yet decided are decided with the new options.';

CREATE FUNCTION adstream._order_document(o adstream.attributed_order, pipeline text, region text)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_build_object(
			   'record_uuid', adstream.order_uuid(region, o.order_id),
			   'version', o.version,
			   'pipeline', pipeline,
			   'region', region,
			   'order_id', o.order_id,
			   'user_id', o.user_id,
			   'store_id', o.store_id,
			   'order_time', to_char(o.order_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
			   'order_time_ms', floor(extract(epoch FROM o.order_time) * 1000)::bigint,
			   'amount', (o.amount_micros / 1000000.0)::numeric(20,6),
			   'amount_micros', o.amount_micros,
			   'currency', o.currency,
			   'attribution', o.attribution,
			   'ad_id', o.ad_id,
			   'campaign_id', o.campaign_id,
			   'advertiser_id', o.advertiser_id,
			   'touch_event_id', o.touch_event_id,
			   'touch_time', to_char(o.touch_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
$$;
COMMENT ON FUNCTION adstream._order_document(adstream.attributed_order, text, text) IS
	'Internal: an attributed order as JSON, as the enrichment hook receives it; its output record adds enrichment (the hook''s object as JSON text) and enrichment_status.';

-- PL/pgSQL, not SQL: a SQL function (one that cannot be inlined, as a SET
-- clause prevents) sets up a new executor for its body at every call, so
-- the SQL function it calls in turn was parsed and planned again for every
-- order, four times the cost of the document itself.  PL/pgSQL keeps its
-- plan, and the inner function's, for the transaction.
CREATE FUNCTION adstream._order_payload(o adstream.attributed_order, pipeline text, region text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN (adstream._order_document(o, pipeline, region)
			|| jsonb_build_object('enrichment', o.enrichment::text,
								  'enrichment_status', o.enrichment_status))::text;
END
$$;
COMMENT ON FUNCTION adstream._order_payload(adstream.attributed_order, text, text) IS
	'Internal: the JSON text of an attributed order''s output record.';

CREATE FUNCTION adstream._emit_orders(pipeline_id integer, keys uuid[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	-- every writer of the outbox holds this lock until it commits (see
	-- fold_minute_stats): ids become visible in id order
	LOCK TABLE adstream.outbox IN SHARE ROW EXCLUSIVE MODE;
	INSERT INTO adstream.outbox (pipeline_id, record_uuid, version, payload)
	SELECT o.pipeline_id, adstream.order_uuid(p.region, o.order_id), o.version,
		   adstream._order_payload(o, p.name, p.region)
	  FROM adstream.attributed_order AS o
	  JOIN adstream.pipeline AS p ON p.id = o.pipeline_id AND p.emit_mode <> 'none'
	 WHERE o.pipeline_id = _emit_orders.pipeline_id AND o.order_key = ANY (keys)
	 ORDER BY o.order_time, o.order_key;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		PERFORM adstream._wake_sinks();
	END IF;
	UPDATE adstream.order_options AS x SET emitted = x.emitted + n
	 WHERE x.pipeline_id = _emit_orders.pipeline_id;
	RETURN n;
END
$$;
COMMENT ON FUNCTION adstream._emit_orders(integer, uuid[]) IS
	'Internal: writes the output records of orders that are done to adstream.outbox (unless the pipeline''s emit_mode is none).';

CREATE FUNCTION adstream._decide_orders(pipeline_id integer, now timestamptz, max_rows integer)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	opt adstream.order_options;
	n bigint;
	done_keys uuid[];
BEGIN
	SELECT * INTO opt FROM adstream.order_options AS x WHERE x.pipeline_id = _decide_orders.pipeline_id;
	IF NOT FOUND THEN
		RETURN 0;
	END IF;
	WITH due AS (
		-- what the match needs comes along: joined back to the orders by
		-- key, the due orders were hashed against every stored order, each
		-- step
		SELECT o.order_key, o.user_id, o.store_id, o.order_time
		  FROM adstream.attributed_order AS o
		 WHERE o.pipeline_id = _decide_orders.pipeline_id AND o.state = 'pending'
		   AND o.due_at <= _decide_orders.now
		 ORDER BY o.due_at
		 LIMIT max_rows
		   FOR UPDATE SKIP LOCKED
	), matched AS (
		-- the same user, the same store, at or before the order, within the
		-- window of its kind; the rule orders the candidates.  Windows are
		-- exact durations (a day is 24 hours whatever the time zone).
		SELECT o.order_key, t.event_type, t.ad_id, t.campaign_id, t.advertiser_id,
			   t.event_id, t.event_time
		  FROM due AS o
		  LEFT JOIN LATERAL (
				SELECT e.event_type, e.ad_id, e.campaign_id, e.advertiser_id, e.event_id,
					   e.event_time
				  FROM adstream.event AS e
				 WHERE e.pipeline_id = opt.events_pipeline_id
				   AND e.user_id = o.user_id AND e.store_id = o.store_id
				   AND e.event_time <= o.order_time
				   AND ((e.event_type = 'click'
						 AND e.event_time >= o.order_time
											 - extract(epoch FROM opt.click_window) * interval '1 second')
						OR (e.event_type = 'impression' AND opt.attribution_rule <> 'last_click'
							AND e.event_time >= o.order_time
												- extract(epoch FROM opt.view_window) * interval '1 second'))
				 ORDER BY (opt.attribution_rule = 'last_click_then_view'
						   AND e.event_type = 'click') DESC,
						  e.event_time DESC, (e.event_type = 'click') DESC, e.event_id DESC
				 LIMIT 1) AS t ON true
	), decided AS (
		UPDATE adstream.attributed_order AS o
		   SET state = CASE WHEN opt.enrich_function IS NULL THEN 'done' ELSE 'enriching' END,
			   due_at = _decide_orders.now,
			   attribution = CASE m.event_type WHEN 'click' THEN 'click'
											   WHEN 'impression' THEN 'view'
											   ELSE 'none' END,
			   ad_id = m.ad_id,
			   campaign_id = m.campaign_id,
			   advertiser_id = m.advertiser_id,
			   touch_event_id = m.event_id,
			   touch_time = m.event_time,
			   decided_at = _decide_orders.now,
			   enrichment_status = CASE WHEN opt.enrich_function IS NULL THEN 'none' END,
			   version = CASE WHEN opt.enrich_function IS NULL THEN 1 ELSE 0 END
		  FROM matched AS m
		 WHERE o.pipeline_id = _decide_orders.pipeline_id AND o.order_key = m.order_key
		   -- implied by the join, but it has the orders found through the
		   -- primary key, not by hashing every stored order (whose estimated
		   -- cost also had every step JIT-compiled)
		   AND o.order_key = ANY (ARRAY(SELECT d.order_key FROM due AS d))
		RETURNING o.*
	), revenue AS (
		INSERT INTO adstream.revenue_minute AS r
			   (pipeline_id, window_start, ad_id, currency, campaign_id, orders, click_orders,
				revenue_micros)
		SELECT _decide_orders.pipeline_id, date_trunc('minute', d.order_time, 'UTC'), d.ad_id,
			   d.currency, (array_agg(d.campaign_id ORDER BY d.touch_time DESC))[1],
			   count(*), count(*) FILTER (WHERE d.attribution = 'click'), sum(d.amount_micros)
		  FROM decided AS d
		 WHERE d.attribution <> 'none'
		 GROUP BY date_trunc('minute', d.order_time, 'UTC'), d.ad_id, d.currency
		 ORDER BY 2, 3, 4
		ON CONFLICT ON CONSTRAINT revenue_minute_pkey DO UPDATE
		   SET orders = r.orders + excluded.orders,
			   click_orders = r.click_orders + excluded.click_orders,
			   revenue_micros = r.revenue_micros + excluded.revenue_micros,
			   campaign_id = coalesce(excluded.campaign_id, r.campaign_id)
		RETURNING 1
	), counted AS (
		UPDATE adstream.order_options AS x
		   SET decided = x.decided + c.n,
			   attributed_click = x.attributed_click + c.clicks,
			   attributed_view = x.attributed_view + c.views,
			   unattributed = x.unattributed + c.n - c.clicks - c.views
		  FROM (SELECT count(*) AS n,
					   count(*) FILTER (WHERE d.attribution = 'click') AS clicks,
					   count(*) FILTER (WHERE d.attribution = 'view') AS views
				  FROM decided AS d) AS c
		 WHERE x.pipeline_id = _decide_orders.pipeline_id
		RETURNING c.n
	)
	-- (revenue runs whether read or not: data-modifying CTEs always do)
	SELECT (SELECT c.n FROM counted AS c),
		   (SELECT array_agg(d.order_key) FROM decided AS d WHERE d.state = 'done')
	  INTO n, done_keys;
	IF done_keys IS NOT NULL THEN
		PERFORM adstream._emit_orders(_decide_orders.pipeline_id, done_keys);
	END IF;
	RETURN coalesce(n, 0);
END
$$;
COMMENT ON FUNCTION adstream._decide_orders(integer, timestamptz, integer) IS
	'Internal: decides at most max_rows orders of an orders pipeline whose grace period is over: attributes them, adds their revenue, and emits those without a hook.';

CREATE FUNCTION adstream._finish_enrichment(pipeline_id integer, now timestamptz, keys uuid[],
											enrichments jsonb[], errors text[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	opt adstream.order_options;
	done_keys uuid[];
	n_done bigint;
	n_ok bigint;
	n_failed bigint;
	n_retry bigint;
BEGIN
	SELECT * INTO opt FROM adstream.order_options AS x
	 WHERE x.pipeline_id = _finish_enrichment.pipeline_id;
	WITH r AS (
		-- neither result nor error, and no hook: it was removed while the
		-- order waited, and no call was made
		SELECT u.*, (u.e IS NULL AND u.err IS NULL AND opt.enrich_function IS NULL) AS no_hook
		  FROM unnest(keys, enrichments, errors) AS u(k, e, err)
	), upd AS (
		UPDATE adstream.attributed_order AS o
		   SET enrich_attempts = o.enrich_attempts + CASE WHEN r.no_hook THEN 0 ELSE 1 END,
			   enrich_error = r.err,
			   enrichment = r.e,
			   state = CASE WHEN r.err IS NULL OR o.enrich_attempts + 1 >= opt.enrich_max_attempts
							THEN 'done' ELSE 'enriching' END,
			   enrichment_status = CASE WHEN r.no_hook THEN 'none'
										WHEN r.err IS NULL THEN 'ok'
										WHEN o.enrich_attempts + 1 >= opt.enrich_max_attempts
										THEN 'failed' END,
			   version = CASE WHEN r.err IS NULL OR o.enrich_attempts + 1 >= opt.enrich_max_attempts
							  THEN 1 ELSE 0 END,
			   -- backoff doubles with each failed attempt, at most an hour
			   due_at = _finish_enrichment.now
						+ least(opt.enrich_backoff * power(2, least(o.enrich_attempts, 20)),
								interval '1 hour')
		  FROM r
		 WHERE o.pipeline_id = _finish_enrichment.pipeline_id AND o.order_key = r.k
		   AND o.state = 'enriching'
		RETURNING o.order_key, o.state, o.enrichment_status
	)
	SELECT array_agg(u.order_key) FILTER (WHERE u.state = 'done'),
		   count(*) FILTER (WHERE u.state = 'done'),
		   count(*) FILTER (WHERE u.enrichment_status = 'ok'),
		   count(*) FILTER (WHERE u.enrichment_status = 'failed'),
		   count(*) FILTER (WHERE u.state = 'enriching')
	  INTO done_keys, n_done, n_ok, n_failed, n_retry
	  FROM upd AS u;
	UPDATE adstream.order_options AS x
	   SET enriched = x.enriched + n_ok, enrich_failed = x.enrich_failed + n_failed,
		   enrich_retries = x.enrich_retries + n_retry
	 WHERE x.pipeline_id = _finish_enrichment.pipeline_id;
	IF done_keys IS NOT NULL THEN
		PERFORM adstream._emit_orders(_finish_enrichment.pipeline_id, done_keys);
	END IF;
	RETURN n_done;
END
$$;
COMMENT ON FUNCTION adstream._finish_enrichment(integer, timestamptz, uuid[], jsonb[], text[]) IS
	'Internal: records the outcome of enrichment hook calls (an error text where one failed): done orders are emitted, failed ones retried with backoff until enrich_max_attempts, then emitted without enrichment. Orders whose hook was removed while they waited are emitted with enrichment_status none.';

CREATE FUNCTION adstream.attribute_orders(
	pipeline text DEFAULT NULL,
	max_rows integer DEFAULT 10000,
	OUT pipeline_name text,
	OUT decided bigint,
	OUT enriched bigint,
	OUT retried bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'adstream_attribute_orders'
LANGUAGE C
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION adstream.attribute_orders(text, integer) IS
	'Decides the orders of an orders pipeline (of every one, when NULL) whose grace period is over, at most max_rows, and calls the enrichment hook for at most max_rows orders due for it, in the current transaction. The attributor workers call it continuously; call it yourself for pipelines fed with adstream.ingest() when no launcher runs. Returns per pipeline: orders decided, orders finished enriching (or given up on), hook failures to retry.';

CREATE VIEW adstream.order_status AS
SELECT p.name AS pipeline,
	   e.name AS events_pipeline,
	   o.attribution_rule,
	   (SELECT count(*) FROM adstream.attributed_order AS a
		 WHERE a.pipeline_id = o.pipeline_id AND a.state = 'pending') AS pending,
	   (SELECT count(*) FROM adstream.attributed_order AS a
		 WHERE a.pipeline_id = o.pipeline_id AND a.state = 'enriching') AS enriching,
	   o.decided,
	   o.attributed_click,
	   o.attributed_view,
	   o.unattributed,
	   o.enrich_function,
	   o.enriched,
	   o.enrich_retries,
	   o.enrich_failed,
	   o.emitted,
	   (SELECT a.enrich_error FROM adstream.attributed_order AS a
		 WHERE a.pipeline_id = o.pipeline_id AND a.state <> 'done' AND a.enrich_error IS NOT NULL
		 ORDER BY a.due_at DESC LIMIT 1) AS last_enrich_error
  FROM adstream.order_options AS o
  JOIN adstream.pipeline AS p ON p.id = o.pipeline_id
  JOIN adstream.pipeline AS e ON e.id = o.events_pipeline_id;
COMMENT ON VIEW adstream.order_status IS
	'Per orders pipeline: orders waiting out their grace period (pending) or their hook (enriching), and since creation: orders decided, attributed to a click, to an impression, unattributed; hook calls that succeeded, failed and will be retried, and orders emitted without enrichment after enrich_max_attempts (enrich_failed); output records written.';

CREATE VIEW adstream.ad_revenue_minute AS
SELECT p.name AS pipeline, r.ad_id, r.campaign_id, r.currency, r.window_start,
	   r.window_start + interval '1 minute' AS window_end,
	   r.orders, r.click_orders, (r.revenue_micros / 1000000.0)::numeric(20,6) AS revenue
  FROM adstream.revenue_minute AS r
  JOIN adstream.pipeline AS p ON p.id = r.pipeline_id;
COMMENT ON VIEW adstream.ad_revenue_minute IS
	'Live attributed orders and revenue per ad (and its campaign), currency and minute of order time, as orders are decided. Minutes past minute_retention are in adstream.ad_revenue_hourly.';

CREATE VIEW adstream.ad_revenue_hourly AS
SELECT p.name AS pipeline, u.ad_id, max(u.campaign_id) AS campaign_id, u.currency,
	   u.window_start, u.window_start + interval '1 hour' AS window_end,
	   sum(u.orders)::bigint AS orders, sum(u.click_orders)::bigint AS click_orders,
	   (sum(u.revenue_micros) / 1000000.0)::numeric(20,6) AS revenue
  FROM (SELECT pipeline_id, date_trunc('hour', window_start, 'UTC') AS window_start, ad_id,
			   currency, campaign_id, orders, click_orders, revenue_micros
		  FROM adstream.revenue_minute
		UNION ALL
		SELECT pipeline_id, window_start, ad_id, currency, campaign_id, orders, click_orders,
			   revenue_micros
		  FROM adstream.revenue_hour) AS u
  JOIN adstream.pipeline AS p ON p.id = u.pipeline_id
 GROUP BY p.name, u.ad_id, u.currency, u.window_start;
COMMENT ON VIEW adstream.ad_revenue_hourly IS
	'Attributed orders and revenue per ad, currency and hour (UTC): live minutes and rolled-up hours together.';

CREATE VIEW adstream.ad_revenue_daily AS
SELECT p.name AS pipeline, u.ad_id, max(u.campaign_id) AS campaign_id, u.currency,
	   u.window_start, u.window_start + interval '1 day' AS window_end,
	   sum(u.orders)::bigint AS orders, sum(u.click_orders)::bigint AS click_orders,
	   (sum(u.revenue_micros) / 1000000.0)::numeric(20,6) AS revenue
  FROM (SELECT pipeline_id, date_trunc('day', window_start, 'UTC') AS window_start, ad_id,
			   currency, campaign_id, orders, click_orders, revenue_micros
		  FROM adstream.revenue_minute
		UNION ALL
		SELECT pipeline_id, date_trunc('day', window_start, 'UTC'), ad_id, currency,
			   campaign_id, orders, click_orders, revenue_micros
		  FROM adstream.revenue_hour
		UNION ALL
		SELECT pipeline_id, window_start, ad_id, currency, campaign_id, orders, click_orders,
			   revenue_micros
		  FROM adstream.revenue_day) AS u
  JOIN adstream.pipeline AS p ON p.id = u.pipeline_id
 GROUP BY p.name, u.ad_id, u.currency, u.window_start;
COMMENT ON VIEW adstream.ad_revenue_daily IS
	'Attributed orders and revenue per ad, currency and day (UTC): live minutes, rolled-up hours and days together.';

-------------------------------------------------------------------------------
-- Union of regions: each region runs the whole pipeline and writes its
-- output records to its own Kafka cluster; a union pipeline reads them from
-- every region's cluster and merges them into the topics Pinot and Hive load
-------------------------------------------------------------------------------

CREATE TABLE adstream.union_source (
	id				integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	pipeline_id		integer NOT NULL,
	region			text COLLATE "C" NOT NULL CHECK (region ~ '^[A-Za-z0-9_.-]{1,63}$'),
	topic			text COLLATE "C" NOT NULL,
	bootstrap_servers text NOT NULL,
	kafka_properties jsonb NOT NULL DEFAULT '{}',
	enabled			boolean NOT NULL DEFAULT true,
	merged			bigint NOT NULL DEFAULT 0,
	duplicates		bigint NOT NULL DEFAULT 0,
	stale			bigint NOT NULL DEFAULT 0,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	UNIQUE (pipeline_id, region)
);
COMMENT ON TABLE adstream.union_source IS
	'The regions a union pipeline merges: per region, the Kafka cluster (bootstrap_servers, kafka_properties) and topic holding that region''s output records. A consumer worker per enabled source reads it, read_committed, with offsets per source in adstream.consumed_offset. Change it with adstream.add_union_source/alter_union_source/drop_union_source.';
COMMENT ON COLUMN adstream.union_source.merged IS
	'Records of this source that were newer than every version of their UUID seen before: merged and emitted. duplicates: records whose version was already merged; stale: records older than the newest version merged (dropped, as a late older version must not replace a newer one).';

CREATE TABLE adstream.union_record (
	pipeline_id		integer NOT NULL,
	record_uuid		uuid NOT NULL,
	version			bigint NOT NULL,
	region			text COLLATE "C" NOT NULL,
	record_time		timestamptz NOT NULL,
	ad_id			text COLLATE "C",
	impressions		bigint,
	clicks			bigint,
	spend_micros	bigint,
	final			boolean,
	order_id		text COLLATE "C",
	amount_micros	bigint,
	currency		text COLLATE "C",
	attribution		text,
	merged_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline_id, record_uuid)
);
CREATE INDEX union_record_time_idx ON adstream.union_record (pipeline_id, record_time);
COMMENT ON TABLE adstream.union_record IS
	'The newest version of every record a union pipeline merged, per record UUID: its dedup memory (by UUID and version) and what the union views show. Window records fill ad_id, impressions, clicks, spend_micros and final (record_time: the window start); order records fill order_id, ad_id (the attributed ad), amount_micros, currency and attribution (record_time: the order time). Kept for the pipeline''s minute_retention after record_time, in consumed Kafka time.';

CREATE FUNCTION adstream.create_union_pipeline(
	name text,
	records text DEFAULT 'ad_minute_stats',
	retention interval DEFAULT '7 days',
	max_message_bytes integer DEFAULT 1048576,
	start_from text DEFAULT 'earliest',
	batch_size integer DEFAULT 10000,
	batch_time interval DEFAULT '100 milliseconds',
	enabled boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF records IS NULL OR records NOT IN ('ad_minute_stats', 'attributed_orders') THEN
		RAISE EXCEPTION 'option "records" must be ad_minute_stats or attributed_orders: %',
			coalesce(quote_literal(records), 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF retention IS NULL OR retention < interval '1 minute' OR retention > interval '3650 days'
	   OR extract(month FROM retention) <> 0 OR extract(year FROM retention) <> 0 THEN
		RAISE EXCEPTION 'option "retention" must be from 1 minute to 3650 days, without months or years: %',
			coalesce(retention::text, 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- the ad-events options a union pipeline does not use get their least
	-- values; its retention is minute_retention (change it with alter_pipeline)
	PERFORM adstream.create_pipeline(name, max_event_age => interval '1 minute',
		max_future_skew => interval '0', dedup_horizon => interval '1 minute',
		attribution_window => interval '0', max_message_bytes => max_message_bytes,
		start_from => start_from, batch_size => batch_size, batch_time => batch_time,
		enabled => enabled, minute_retention => retention, hour_retention => retention);
	UPDATE adstream.pipeline AS p
	   SET kind = 'union', records = create_union_pipeline.records, emit_mode = 'changes'
	 WHERE p.name = create_union_pipeline.name;
END
$$;
COMMENT ON FUNCTION adstream.create_union_pipeline(text, text, interval, integer, text, integer, interval, boolean) IS
	'Creates a union pipeline: it merges the output records (records: ad_minute_stats or attributed_orders) that several regions write to their own Kafka clusters (add them with adstream.add_union_source), deduplicated by (record UUID, version), keeping the newest version, and emits each new version to its sinks. retention: how long a merged record is remembered (and shown) after its window or order time, in consumed Kafka time; stored as minute_retention, which adstream.alter_pipeline changes.';

-- A source's options, checked; errors name the option.
CREATE FUNCTION adstream._check_union_source(region text, bootstrap_servers text, topic text,
	kafka_properties jsonb, enabled boolean)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF region IS NULL OR region !~ '^[A-Za-z0-9_.-]{1,63}$' THEN
		RAISE EXCEPTION 'option "region" must be 1 to 63 letters, digits, ".", "_" or "-": %',
			coalesce(quote_literal(region), 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF topic IS NULL OR topic !~ '^[A-Za-z0-9._-]{1,249}$' THEN
		RAISE EXCEPTION 'option "topic" must be a Kafka topic name (1 to 249 letters, digits, ".", "_" or "-"): %',
			coalesce(quote_literal(topic), 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF bootstrap_servers IS NULL OR btrim(bootstrap_servers) = '' THEN
		RAISE EXCEPTION 'option "bootstrap_servers" must name at least one broker of the region''s cluster'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF kafka_properties IS NULL THEN
		RAISE EXCEPTION 'option "kafka_properties" must not be null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM adstream._check_kafka_properties(kafka_properties, false);
	IF enabled IS NULL THEN
		RAISE EXCEPTION 'option "enabled" must not be null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION adstream._check_union_source(text, text, text, jsonb, boolean) IS
	'Internal: validates the options of a union source.';

-- The union pipeline named, locked against concurrent changes; raises if
-- there is none.
CREATE FUNCTION adstream._union_pipeline(name text)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p adstream.pipeline;
BEGIN
	SELECT * INTO p FROM adstream.pipeline AS x WHERE x.name = _union_pipeline.name
	   FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'pipeline "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
	IF p.kind <> 'union' THEN
		RAISE EXCEPTION 'pipeline "%" is not a union pipeline', name
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Create one with adstream.create_union_pipeline().';
	END IF;
	-- its workers start again with the sources as they are now
	UPDATE adstream.pipeline AS x SET updated_at = clock_timestamp() WHERE x.id = p.id;
	RETURN p.id;
END
$$;
COMMENT ON FUNCTION adstream._union_pipeline(text) IS
	'Internal: the id of a union pipeline, locked, its workers told to restart.';

CREATE FUNCTION adstream.add_union_source(
	pipeline text,
	region text,
	bootstrap_servers text,
	topic text,
	kafka_properties jsonb DEFAULT '{}',
	enabled boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	pid integer := adstream._union_pipeline(pipeline);
BEGIN
	PERFORM adstream._check_union_source(region, bootstrap_servers, topic,
										 kafka_properties, enabled);
	IF (SELECT count(*) FROM adstream.union_source AS s WHERE s.pipeline_id = pid) >= 16 THEN
		RAISE EXCEPTION 'union pipeline "%" has 16 sources, the most it can have', pipeline
			USING ERRCODE = 'program_limit_exceeded';
	END IF;
	INSERT INTO adstream.union_source (pipeline_id, region, bootstrap_servers, topic,
									   kafka_properties, enabled)
	VALUES (pid, add_union_source.region, add_union_source.bootstrap_servers,
			add_union_source.topic, add_union_source.kafka_properties,
			add_union_source.enabled);
EXCEPTION
	WHEN unique_violation THEN
		RAISE EXCEPTION 'union pipeline "%" already has a source for region "%"', pipeline, region
			USING ERRCODE = 'duplicate_object';
END
$$;
COMMENT ON FUNCTION adstream.add_union_source(text, text, text, text, jsonb, boolean) IS
	'Adds a region to a union pipeline: the Kafka cluster (bootstrap_servers, kafka_properties for the consumer) and topic where that region writes its output records. Only records of that region are accepted from it (others are dead-lettered as wrong_region). At most 16 per pipeline.';

CREATE FUNCTION adstream.alter_union_source(
	pipeline text,
	region text,
	bootstrap_servers text DEFAULT NULL,
	topic text DEFAULT NULL,
	kafka_properties jsonb DEFAULT NULL,
	enabled boolean DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	pid integer := adstream._union_pipeline(pipeline);
	s adstream.union_source;
BEGIN
	SELECT * INTO s FROM adstream.union_source AS x
	 WHERE x.pipeline_id = pid AND x.region = alter_union_source.region FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'union pipeline "%" has no source for region "%"', pipeline, region
			USING ERRCODE = 'undefined_object';
	END IF;
	s.bootstrap_servers := coalesce(alter_union_source.bootstrap_servers, s.bootstrap_servers);
	s.topic := coalesce(alter_union_source.topic, s.topic);
	s.kafka_properties := coalesce(alter_union_source.kafka_properties, s.kafka_properties);
	s.enabled := coalesce(alter_union_source.enabled, s.enabled);
	PERFORM adstream._check_union_source(s.region, s.bootstrap_servers, s.topic,
										 s.kafka_properties, s.enabled);
	UPDATE adstream.union_source AS x
	   SET bootstrap_servers = s.bootstrap_servers, topic = s.topic,
		   kafka_properties = s.kafka_properties, enabled = s.enabled, updated_at = now()
	 WHERE x.id = s.id;
END
$$;
COMMENT ON FUNCTION adstream.alter_union_source(text, text, text, text, jsonb, boolean) IS
	'Changes a union source; options left NULL keep their value. A new topic is read from start_from (offsets are per topic); disabling a source stops its worker and keeps its offsets.';

CREATE FUNCTION adstream.drop_union_source(pipeline text, region text, if_exists boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	pid integer := adstream._union_pipeline(pipeline);
BEGIN
	DELETE FROM adstream.union_source AS x
	 WHERE x.pipeline_id = pid AND x.region = drop_union_source.region;
	IF NOT FOUND THEN
		IF if_exists THEN
			RAISE NOTICE 'union pipeline "%" has no source for region "%", skipping', pipeline, region;
			RETURN;
		END IF;
		RAISE EXCEPTION 'union pipeline "%" has no source for region "%"', pipeline, region
			USING ERRCODE = 'undefined_object';
	END IF;
	DELETE FROM adstream.consumed_offset AS o
	 WHERE o.pipeline_id = pid AND o.source = drop_union_source.region;
END
$$;
COMMENT ON FUNCTION adstream.drop_union_source(text, text, boolean) IS
	'Removes a region from a union pipeline, with its stored offsets; the records merged from it stay (until their retention).';

CREATE FUNCTION adstream._merge_union(pipeline_id integer, source text, uuids uuid[],
	versions bigint[], payloads text[],
	OUT merged bigint, OUT duplicates bigint, OUT stale bigint)
RETURNS record
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	is_orders boolean;
BEGIN
	-- batches of one union pipeline take turns (its sources' workers run
	-- in parallel up to here): a UUID found absent is not being added by
	-- another transaction meanwhile
	SELECT p.records = 'attributed_orders' INTO is_orders FROM adstream.pipeline AS p
	 WHERE p.id = _merge_union.pipeline_id FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'pipeline % was dropped', _merge_union.pipeline_id
			USING ERRCODE = 'undefined_object';
	END IF;
	-- every writer of the outbox holds this lock until it commits (see
	-- fold_minute_stats): ids become visible in id order
	LOCK TABLE adstream.outbox IN SHARE ROW EXCLUSIVE MODE;

	-- each record against the newest version stored or earlier in the batch;
	-- every newer version goes out, in the order it came, and the newest of
	-- each UUID is remembered
	WITH b AS MATERIALIZED (
		SELECT u.n, u.k AS record_uuid, u.v AS version, u.body AS payload,
			   greatest(r.version,
						max(u.v) OVER (PARTITION BY u.k ORDER BY u.n
									   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
				   AS newest_before
		  FROM unnest(uuids, versions, payloads) WITH ORDINALITY AS u(k, v, body, n)
		  LEFT JOIN adstream.union_record AS r
			ON r.pipeline_id = _merge_union.pipeline_id AND r.record_uuid = u.k),
	kept AS (
		SELECT * FROM b WHERE b.newest_before IS NULL OR b.version > b.newest_before),
	emitted AS (
		INSERT INTO adstream.outbox (pipeline_id, record_uuid, version, payload)
		SELECT _merge_union.pipeline_id, k.record_uuid, k.version, k.payload
		  FROM kept AS k ORDER BY k.n
		RETURNING 1),
	remembered AS (
		INSERT INTO adstream.union_record AS r (pipeline_id, record_uuid, version, region,
			record_time, ad_id, impressions, clicks, spend_micros, final, order_id,
			amount_micros, currency, attribution)
		SELECT _merge_union.pipeline_id, k.record_uuid, k.version, j ->> 'region',
			   timestamptz 'epoch' + (j ->> CASE WHEN is_orders THEN 'order_time_ms'
												 ELSE 'window_start_ms' END)::bigint
									 * interval '1 millisecond',
			   j ->> 'ad_id', (j ->> 'impressions')::bigint, (j ->> 'clicks')::bigint,
			   (j ->> 'spend_micros')::bigint, (j ->> 'final')::boolean, j ->> 'order_id',
			   (j ->> 'amount_micros')::bigint, j ->> 'currency', j ->> 'attribution'
		  FROM (SELECT DISTINCT ON (x.record_uuid) x.*, x.payload::jsonb AS j
				  FROM kept AS x ORDER BY x.record_uuid, x.version DESC) AS k
		ON CONFLICT ON CONSTRAINT union_record_pkey DO UPDATE
		   SET version = excluded.version, record_time = excluded.record_time,
			   ad_id = excluded.ad_id, impressions = excluded.impressions,
			   clicks = excluded.clicks, spend_micros = excluded.spend_micros,
			   final = excluded.final, order_id = excluded.order_id,
			   amount_micros = excluded.amount_micros, currency = excluded.currency,
			   attribution = excluded.attribution, merged_at = excluded.merged_at
		 WHERE r.version < excluded.version
		RETURNING 1)
	SELECT count(*) FILTER (WHERE b.newest_before IS NULL OR b.version > b.newest_before),
		   count(*) FILTER (WHERE b.version = b.newest_before),
		   count(*) FILTER (WHERE b.version < b.newest_before)
	  INTO merged, duplicates, stale
	  FROM b;
	IF merged > 0 THEN
		PERFORM adstream._wake_sinks();
	END IF;
	UPDATE adstream.union_source AS s
	   SET merged = s.merged + _merge_union.merged,
		   duplicates = s.duplicates + _merge_union.duplicates,
		   stale = s.stale + _merge_union.stale
	 WHERE s.pipeline_id = _merge_union.pipeline_id AND s.region = _merge_union.source;
END
$$;
COMMENT ON FUNCTION adstream._merge_union(integer, text, uuid[], bigint[], text[]) IS
	'Internal: steps 4 and 5 of a union pipeline''s batch (see bgworker/core.c): keeps, in message order, each record newer than every version of its UUID seen before, in adstream.union_record and the outbox; counts the duplicates and stale versions dropped.';

CREATE VIEW adstream.union_region_minute_stats AS
SELECT p.name AS pipeline, r.region, r.ad_id, r.record_time AS window_start,
	   r.impressions, r.clicks, r.spend_micros, r.version, r.final
  FROM adstream.union_record AS r
  JOIN adstream.pipeline AS p ON p.id = r.pipeline_id AND p.records = 'ad_minute_stats';
COMMENT ON VIEW adstream.union_region_minute_stats IS
	'Per union pipeline, region, ad and minute: the totals of the newest version merged of that region''s window record.';

CREATE VIEW adstream.union_minute_stats AS
SELECT pipeline, ad_id, window_start,
	   sum(impressions)::bigint AS impressions, sum(clicks)::bigint AS clicks,
	   sum(spend_micros)::bigint AS spend_micros,
	   array_agg(region ORDER BY region) AS regions,
	   bool_and(final) AS final
  FROM adstream.union_region_minute_stats
 GROUP BY pipeline, ad_id, window_start;
COMMENT ON VIEW adstream.union_minute_stats IS
	'Per union pipeline, ad and minute: the totals merged across regions (each region''s newest version, added), the regions that had the window, and whether every region''s record is final.';

CREATE VIEW adstream.union_orders AS
SELECT p.name AS pipeline, r.region, r.order_id, r.record_time AS order_time, r.ad_id,
	   r.attribution, r.amount_micros, r.currency, r.version
  FROM adstream.union_record AS r
  JOIN adstream.pipeline AS p ON p.id = r.pipeline_id AND p.records = 'attributed_orders';
COMMENT ON VIEW adstream.union_orders IS
	'Per union pipeline of attributed orders: every order merged from every region, its newest version.';

CREATE VIEW adstream.union_source_status AS
WITH s AS (
		SELECT u.*, p.name AS pipeline, p.enabled AS pipeline_enabled,
			   (extract(epoch FROM p.updated_at) * 1000000)::int8 AS pversion,
			   -- worker i of a union pipeline reads its i-th enabled source by region
			   (row_number() OVER (PARTITION BY u.pipeline_id, u.enabled ORDER BY u.region)
				- 1)::integer AS worker_index
		  FROM adstream.union_source AS u
		  JOIN adstream.pipeline AS p ON p.id = u.pipeline_id),
	 w AS (SELECT x.*, s.id AS source_id
			 FROM adstream._worker_status() AS x
			 JOIN s ON s.pipeline_id = x.pipeline_id AND s.enabled
				   AND x.worker_index = s.worker_index AND x.version = s.pversion
			WHERE x.pid IS NOT NULL),
	 one AS (SELECT DISTINCT ON (w.source_id) * FROM w ORDER BY w.source_id)
SELECT s.pipeline, s.region, s.topic, s.bootstrap_servers, s.enabled,
	   one.pid AS worker_pid,
	   CASE WHEN one.pid IS NOT NULL THEN one.state
			WHEN NOT s.enabled OR NOT s.pipeline_enabled THEN 'disabled'
			ELSE 'not running' END AS worker_state,
	   (SELECT sum(o.next_offset) FROM adstream.consumed_offset AS o
		 WHERE o.pipeline_id = s.pipeline_id AND o.source = s.region
		   AND o.topic = s.topic)::bigint AS next_offsets,
	   (SELECT sum(greatest(e.end_offset - coalesce(o.next_offset, 0), 0))
		  FROM w AS e
		  LEFT JOIN adstream.consumed_offset AS o
			ON o.pipeline_id = s.pipeline_id AND o.source = s.region AND o.topic = s.topic
		   AND o.partition = e.partition
		 WHERE e.source_id = s.id AND e.partition IS NOT NULL)::bigint AS lag,
	   (SELECT max(o.kafka_time) FROM adstream.consumed_offset AS o
		 WHERE o.pipeline_id = s.pipeline_id AND o.source = s.region) AS consumed_time,
	   s.merged, s.duplicates, s.stale,
	   one.rejected,
	   one.last_commit,
	   one.last_error,
	   one.last_error_at
  FROM s
  LEFT JOIN one ON one.source_id = s.id;
COMMENT ON VIEW adstream.union_source_status IS
	'Per union source (region): its consumer worker''s pid and state, the next offsets stored (added over partitions), the lag behind the cluster''s end offsets, the latest Kafka time consumed, the records merged, duplicate and stale (since the source was added), and the worker''s dead letters, last commit and last error (since it started).';

-------------------------------------------------------------------------------
-- Maintenance: bounded, idempotent steps; pg_cron or the launcher runs them
-------------------------------------------------------------------------------

CREATE FUNCTION adstream.consumed_time(pipeline text)
RETURNS timestamptz
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	-- like the watermark: the slowest partition that is not idle, the newest
	-- when all are idle; never ahead of the clock
	SELECT least(adstream._now(),
				 coalesce(min(o.kafka_time) FILTER (WHERE o.updated_at > now() - p.idle_timeout),
						  max(o.kafka_time), adstream._now()))
	  FROM adstream.pipeline AS p
	  LEFT JOIN adstream.consumed_offset AS o
		ON o.pipeline_id = p.id AND o.kafka_time IS NOT NULL
	 WHERE p.name = consumed_time.pipeline
	 GROUP BY p.id
$$;
COMMENT ON FUNCTION adstream.consumed_time(text) IS
	'How far a pipeline has consumed, in Kafka time: the latest Kafka timestamp of its slowest partition that had messages within idle_timeout (of the newest partition when all are idle), and never later than now. Maintenance expires and rolls up against it, so state a lagging consumer still needs is kept. NULL for an unknown pipeline.';

CREATE FUNCTION adstream._expiry_horizon(pipeline_id integer)
RETURNS timestamptz
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	-- an ad-events pipeline's events are kept for the orders pipelines that
	-- match against them too: until those have consumed past them by their
	-- max_event_age (an order that much older than the consumed time is
	-- still accepted, and needs the events of its click_window), and until
	-- no undecided order is older
	SELECT least(adstream.consumed_time(p.name),
				 (SELECT min(adstream.consumed_time(q.name) - q.max_event_age)
					FROM adstream.order_options AS x
					JOIN adstream.pipeline AS q ON q.id = x.pipeline_id
				   WHERE x.events_pipeline_id = p.id),
				 (SELECT min(a.order_time)
					FROM adstream.order_options AS x
					JOIN adstream.attributed_order AS a
					  ON a.pipeline_id = x.pipeline_id AND a.state = 'pending'
				   WHERE x.events_pipeline_id = p.id))
	  FROM adstream.pipeline AS p
	 WHERE p.id = _expiry_horizon.pipeline_id
$$;
COMMENT ON FUNCTION adstream._expiry_horizon(integer) IS
	'Internal: the time before which a pipeline''s stored events may expire (see adstream.expire_events).';

CREATE FUNCTION adstream._check_max_rows(max_rows integer)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF max_rows IS NULL OR max_rows < 1 THEN
		RAISE EXCEPTION 'max_rows must be a positive integer'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION adstream._check_max_rows(integer) IS
	'Internal: checks the max_rows bound of a maintenance function.';

CREATE FUNCTION adstream.expire_events(pipeline text DEFAULT NULL, max_rows integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	n bigint;
	total bigint := 0;
BEGIN
	PERFORM adstream._check_max_rows(max_rows);
	FOR p IN SELECT x.id, x.kind,
					CASE WHEN x.kind = 'union'
						 THEN adstream.consumed_time(x.name) - x.minute_retention
						 ELSE adstream._expiry_horizon(x.id) END AS horizon
			   FROM adstream.pipeline AS x
			  WHERE x.kind IN ('ad_events', 'union') AND (expire_events.pipeline IS NULL
														  OR x.name = expire_events.pipeline)
			  ORDER BY x.id
	LOOP
		EXIT WHEN total >= max_rows;
		IF p.kind = 'union' THEN
			-- a union pipeline's merged records, past its retention
			DELETE FROM adstream.union_record AS r
			 WHERE r.ctid = ANY (ARRAY(SELECT x.ctid FROM adstream.union_record AS x
									   WHERE x.pipeline_id = p.id AND x.record_time < p.horizon
									   LIMIT max_rows - total));
		ELSE
			DELETE FROM adstream.event AS e
			 WHERE e.ctid = ANY (ARRAY(SELECT x.ctid FROM adstream.event AS x
									   WHERE x.pipeline_id = p.id AND x.expires_at < p.horizon
									   LIMIT max_rows - total));
		END IF;
		GET DIAGNOSTICS n = ROW_COUNT;
		total := total + n;
	END LOOP;
	RETURN total;
END
$$;
COMMENT ON FUNCTION adstream.expire_events(text, integer) IS
	'Deletes at most max_rows stored events (dedup keys and attribution candidates) past expires_at in consumed Kafka time: of the pipeline, of every orders pipeline matching against it (less that pipeline''s max_event_age, as older orders are not accepted), and of its oldest undecided order. Returns how many; call again while it returns max_rows. Idempotent; takes no lock beyond the rows it deletes. For a union pipeline: its merged records whose window or order time is older than its consumed Kafka time less its retention (minute_retention).';

CREATE FUNCTION adstream.expire_orders(pipeline text DEFAULT NULL, max_rows integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	n bigint;
	total bigint := 0;
BEGIN
	PERFORM adstream._check_max_rows(max_rows);
	FOR p IN SELECT x.id, adstream.consumed_time(x.name) AS horizon
			   FROM adstream.pipeline AS x
			  WHERE x.kind = 'orders' AND (expire_orders.pipeline IS NULL
										   OR x.name = expire_orders.pipeline)
			  ORDER BY x.id
	LOOP
		EXIT WHEN total >= max_rows;
		DELETE FROM adstream.attributed_order AS o
		 WHERE o.ctid = ANY (ARRAY(SELECT x.ctid FROM adstream.attributed_order AS x
								   WHERE x.pipeline_id = p.id AND x.expires_at < p.horizon
									 AND x.state = 'done'
								   LIMIT max_rows - total));
		GET DIAGNOSTICS n = ROW_COUNT;
		total := total + n;
	END LOOP;
	RETURN total;
END
$$;
COMMENT ON FUNCTION adstream.expire_orders(text, integer) IS
	'Deletes at most max_rows decided and emitted orders past expires_at (order time + dedup_horizon) in the pipeline''s consumed Kafka time; their revenue stays in the revenue tables. Returns how many. Idempotent.';

CREATE FUNCTION adstream._roll_up(family text, src text, dst text, unit text,
								  pipeline_id integer, before timestamptz, max_rows integer)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- One rollup step: move at most max_rows rows of adstream.<src> whose
-- window ended by "before" into adstream.<dst>, per <unit> (hour or day), adding to what
-- is there, in one statement.  family, src, dst and unit are constants of
-- adstream.rollup_stats, never user input.
DECLARE
	keys text;			-- the key columns after (pipeline_id, window_start)
	vals text;			-- the value columns
	aggs text;			-- how a group of rows becomes one
	sets text;			-- how it adds to an existing row
	n bigint;
BEGIN
	IF family = 'stats' THEN
		keys := 'ad_id';
		vals := 'impressions, clicks, spend_micros';
		aggs := 'sum(m.impressions), sum(m.clicks), sum(m.spend_micros)';
		sets := 'impressions = d.impressions + excluded.impressions,
				 clicks = d.clicks + excluded.clicks,
				 spend_micros = d.spend_micros + excluded.spend_micros';
	ELSE
		keys := 'ad_id, currency';
		vals := 'campaign_id, orders, click_orders, revenue_micros';
		aggs := 'max(m.campaign_id), sum(m.orders), sum(m.click_orders), sum(m.revenue_micros)';
		sets := 'orders = d.orders + excluded.orders,
				 click_orders = d.click_orders + excluded.click_orders,
				 revenue_micros = d.revenue_micros + excluded.revenue_micros,
				 campaign_id = coalesce(excluded.campaign_id, d.campaign_id)';
	END IF;
	EXECUTE format($q$
		WITH moved AS (
			DELETE FROM adstream.%1$I AS s
			 WHERE s.ctid = ANY (ARRAY(
					SELECT x.ctid FROM adstream.%1$I AS x
					 WHERE x.pipeline_id = $1 AND x.window_start + interval %3$L <= $2 %4$s
					 LIMIT $3))
			RETURNING s.*
		), ins AS (
			INSERT INTO adstream.%2$I AS d (pipeline_id, window_start, %5$s, %6$s)
			SELECT m.pipeline_id, date_trunc(%9$L, m.window_start, 'UTC'), %5$s, %7$s
			  FROM moved AS m
			 GROUP BY m.pipeline_id, date_trunc(%9$L, m.window_start, 'UTC'), %5$s
			 ORDER BY 1, 2, %5$s
			ON CONFLICT (pipeline_id, window_start, %5$s) DO UPDATE SET %8$s
		)
		SELECT count(*) FROM moved$q$,
		src, dst,
		-- the width of a window of src
		CASE WHEN src IN ('minute_stat', 'revenue_minute') THEN '1 minute' ELSE '1 hour' END,
		-- windows waiting to be emitted (emit_mode final) stay
		CASE WHEN src = 'minute_stat' THEN 'AND NOT x.pending' ELSE '' END,
		keys, vals, aggs, sets, unit)
	INTO n USING pipeline_id, before, max_rows;
	RETURN n;
END
$$;
COMMENT ON FUNCTION adstream._roll_up(text, text, text, text, integer, timestamptz, integer) IS
	'Internal: one bounded rollup step from one table of aggregates (stats) or revenue to the next coarser one (see adstream.rollup_stats).';

CREATE FUNCTION adstream.rollup_stats(pipeline text DEFAULT NULL, max_rows integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	step record;
	total bigint := 0;
BEGIN
	PERFORM adstream._check_max_rows(max_rows);
	-- folds write minute_stat under this lock too: a window is either
	-- folded into its minute or rolled up with it, never lost between
	LOCK TABLE adstream.minute_stat IN SHARE ROW EXCLUSIVE MODE;
	FOR p IN SELECT x.id, x.kind, adstream.consumed_time(x.name) AS horizon,
					x.minute_retention, x.hour_retention
			   FROM adstream.pipeline AS x
			  WHERE rollup_stats.pipeline IS NULL OR x.name = rollup_stats.pipeline
			  ORDER BY x.id
	LOOP
		-- minutes into hours, then hours into days
		FOR step IN
			SELECT * FROM (VALUES
				('stats', 'minute_stat', 'hour_stat', 'hour', p.minute_retention),
				('stats', 'hour_stat', 'day_stat', 'day', p.hour_retention),
				('revenue', 'revenue_minute', 'revenue_hour', 'hour', p.minute_retention),
				('revenue', 'revenue_hour', 'revenue_day', 'day', p.hour_retention))
				AS v(family, src, dst, unit, retention)
			 WHERE v.family = CASE p.kind WHEN 'ad_events' THEN 'stats' ELSE 'revenue' END
		LOOP
			EXIT WHEN total >= max_rows;
			total := total + adstream._roll_up(step.family, step.src, step.dst, step.unit, p.id,
											   p.horizon - step.retention, (max_rows - total)::integer);
		END LOOP;
		EXIT WHEN total >= max_rows;
	END LOOP;
	RETURN total;
END
$$;
COMMENT ON FUNCTION adstream.rollup_stats(text, integer) IS
	'Moves at most max_rows rows: 1-minute aggregates (and attributed revenue) whose window ended more than minute_retention before the pipeline''s consumed Kafka time into hourly rows, and hourly rows past hour_retention into daily rows. Windows still waiting to be emitted (emit_mode final) stay. Totals in the hourly and daily views are the same before and after. Returns how many rows moved. Idempotent.';

CREATE FUNCTION adstream.run_maintenance(
	which text DEFAULT NULL,
	max_rows integer DEFAULT 10000,
	runner text DEFAULT 'manual')
RETURNS TABLE (task text, rows bigint)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t text;
	n bigint;
	started timestamptz;
BEGIN
	PERFORM adstream._check_max_rows(max_rows);
	IF which IS NOT NULL AND which NOT IN
		('expire_events', 'expire_orders', 'prune_outbox', 'rollup_stats') THEN
		RAISE EXCEPTION 'unknown maintenance task: %', quote_literal(which)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Tasks: expire_events, expire_orders, prune_outbox, rollup_stats.';
	END IF;
	-- rollup_stats before prune_outbox: a step of each in one transaction
	-- then locks minute_stat before outbox, as folds do; the other order
	-- deadlocks with a fold (which holds minute_stat and waits for outbox)
	FOREACH t IN ARRAY ARRAY['expire_events', 'expire_orders', 'rollup_stats', 'prune_outbox'] LOOP
		CONTINUE WHEN which IS NOT NULL AND t <> which;
		started := clock_timestamp();
		BEGIN
			n := CASE t
				 WHEN 'expire_events' THEN adstream.expire_events(NULL, max_rows)
				 WHEN 'expire_orders' THEN adstream.expire_orders(NULL, max_rows)
				 WHEN 'prune_outbox' THEN adstream.prune_outbox(NULL, max_rows)
				 ELSE adstream.rollup_stats(NULL, max_rows) END;
			UPDATE adstream.maintenance_run AS m
			   SET runs = m.runs + 1, rows_total = m.rows_total + n, last_started = started,
				   last_finished = clock_timestamp(), last_rows = n, last_runner = runner
			 WHERE m.task = t;
		EXCEPTION WHEN OTHERS THEN
			n := NULL;
			UPDATE adstream.maintenance_run AS m
			   SET runs = m.runs + 1, last_started = started, last_finished = clock_timestamp(),
				   last_rows = NULL, last_runner = runner, last_error = SQLERRM,
				   last_error_at = clock_timestamp()
			 WHERE m.task = t;
		END;
		task := t;
		rows := n;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION adstream.run_maintenance(text, integer, text) IS
	'Runs one bounded step (at most max_rows rows) of one maintenance task (which), or of each when NULL, in this order: expire_events, expire_orders, rollup_stats, prune_outbox. Records the run in adstream.maintenance_status, an error included (an error fails only its task''s step). Returns the rows each step handled (NULL after an error).';

CREATE PROCEDURE adstream.maintain(max_rows integer DEFAULT 10000,
								   time_budget interval DEFAULT '50 seconds',
								   runner text DEFAULT 'manual')
LANGUAGE plpgsql
AS $$
-- No SECURITY DEFINER and no SET clause here: either would forbid the
-- COMMITs between steps, which keep every step's locks short.
DECLARE
	deadline timestamptz := clock_timestamp() + time_budget;
	-- (in run_maintenance's order: minute_stat locked before outbox)
	busy text[] := ARRAY['expire_events', 'expire_orders', 'rollup_stats', 'prune_outbox'];
	still text[];
	r record;
BEGIN
	WHILE cardinality(busy) > 0 AND clock_timestamp() < deadline LOOP
		still := '{}';
		FOR r IN SELECT s.task, s.rows FROM unnest(busy) AS b(t),
				 LATERAL adstream.run_maintenance(b.t, max_rows, runner) AS s LOOP
			IF r.rows = max_rows THEN
				still := still || r.task;
			END IF;
		END LOOP;
		COMMIT;
		busy := still;
	END LOOP;
END
$$;
COMMENT ON PROCEDURE adstream.maintain(integer, interval, text) IS
	'Runs every maintenance task in steps of at most max_rows rows, each step its own transaction, until none has more to do or time_budget is spent. This is what adstream.schedule_maintenance() has pg_cron call; call it with CALL, outside a transaction block.';

CREATE FUNCTION adstream._maintenance_schedule()
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	sched text;
BEGIN
	IF to_regclass('cron.job') IS NULL THEN
		RETURN NULL;
	END IF;
	EXECUTE 'SELECT j.schedule FROM cron.job AS j WHERE j.jobname = ''adstream-maintenance'''
			' AND j.database = current_database() AND j.active LIMIT 1' INTO sched;
	RETURN sched;
EXCEPTION WHEN insufficient_privilege OR undefined_column THEN
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION adstream._maintenance_schedule() IS
	'Internal: the pg_cron schedule of adstream''s maintenance job in this database, or NULL when pg_cron does not run it (then the launcher does).';

CREATE FUNCTION adstream.schedule_maintenance(schedule text DEFAULT '* * * * *',
											  max_rows integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	jobid bigint;
BEGIN
	PERFORM adstream._check_max_rows(max_rows);
	-- (to_regproc('cron.schedule') is NULL: pg_cron overloads it)
	IF to_regprocedure('cron.schedule(text,text,text)') IS NULL THEN
		RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
			USING ERRCODE = 'undefined_object',
				  HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database and CREATE EXTENSION pg_cron; without it the adstream launcher runs maintenance itself.';
	END IF;
	EXECUTE 'SELECT cron.schedule($1, $2, $3)'
	   INTO jobid
	  USING 'adstream-maintenance', schedule,
			format('CALL adstream.maintain(%s, %L, %L)', max_rows, '50 seconds', 'pg_cron');
	RETURN jobid;
END
$$;
COMMENT ON FUNCTION adstream.schedule_maintenance(text, integer) IS
	'Schedules all maintenance with pg_cron, as one job named adstream-maintenance (CALL adstream.maintain()) on the given cron schedule, every minute by default, run as the calling role; calling it again changes the schedule. Returns the pg_cron job id. While the job exists, the launcher leaves maintenance to it.';

CREATE FUNCTION adstream.unschedule_maintenance()
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	found boolean;
BEGIN
	IF to_regclass('cron.job') IS NULL THEN
		RETURN false;
	END IF;
	EXECUTE 'SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = ''adstream-maintenance'')'
	   INTO found;
	IF found THEN
		EXECUTE 'SELECT cron.unschedule(''adstream-maintenance'')';
	END IF;
	RETURN found;
END
$$;
COMMENT ON FUNCTION adstream.unschedule_maintenance() IS
	'Removes the pg_cron maintenance job; the launcher then runs maintenance itself. Returns whether there was one.';

CREATE VIEW adstream.maintenance_status AS
SELECT m.task,
	   coalesce('pg_cron (' || adstream._maintenance_schedule() || ')',
				CASE WHEN current_setting('adstream.maintenance_interval', true) IN ('0', '0ms')
					 THEN 'nobody' ELSE 'launcher' END) AS scheduled_by,
	   m.runs,
	   m.rows_total,
	   m.last_started,
	   m.last_finished,
	   m.last_rows,
	   m.last_runner,
	   m.last_error,
	   m.last_error_at
  FROM adstream.maintenance_run AS m;
COMMENT ON VIEW adstream.maintenance_status IS
	'Per maintenance task: who schedules it (pg_cron with its schedule, else the launcher every adstream.maintenance_interval), its runs and rows handled, when it last started and finished, who ran it, and its last error.';

CREATE VIEW adstream.dead_letter_summary AS
SELECT p.name AS pipeline,
	   d.reason,
	   count(*) AS messages,
	   min(d.received_at) AS first_received_at,
	   max(d.received_at) AS last_received_at
  FROM adstream.dead_letter AS d
  JOIN adstream.pipeline AS p ON p.id = d.pipeline_id
 GROUP BY p.name, d.reason;
COMMENT ON VIEW adstream.dead_letter_summary IS
	'Dead letters counted per pipeline and reason.';

-------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC.  The functions are SECURITY DEFINER, so
-- GRANT EXECUTE on one (plus USAGE on the schema) delegates exactly that
-- operation; grant SELECT on the views to readers.
-------------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA adstream FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA adstream FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA adstream FROM PUBLIC;
