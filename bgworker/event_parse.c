/*-------------------------------------------------------------------------
 *
 * event_parse.c
 *	  Parsing and validation of one ad-event message.
 *
 * The message must be a JSON object whose top-level fields include:
 *
 *	  event_id		string or integer				required
 *	  event_type	"impression" or "click"			required (any case)
 *	  ad_id			string or integer				required
 *	  event_time	ISO-8601 string, or epoch ms	required
 *	  user_id		string or integer				required
 *	  campaign_id, advertiser_id, store_id			optional, string or integer
 *	  cost			decimal number, >= 0, at most 6 decimal places (optional)
 *	  region		string							optional
 *
 * camelCase spellings (eventId, ...) and the short names type, timestamp,
 * campaign, advertiser and store are accepted too; giving one field twice,
 * under any of its names, is rejected.  Other fields, nested or not, are
 * ignored.  A null optional field counts as absent.
 *
 * An order message (adstream_parse_order) has, likewise:
 *
 *	  order_id		string or integer				required
 *	  user_id		string or integer				required
 *	  store_id		string or integer				required (or "store")
 *	  order_time	ISO-8601 string, or epoch ms	required (or "timestamp")
 *	  amount		decimal number, >= 0, at most 6 decimal places, at
 *					most 10^9						required
 *	  currency		three letters (ISO 4217)		required, stored upper-case
 *
 * A union pipeline reads back output records (adstream_parse_record): the
 * records of ad-events pipelines (record_uuid, version, region, ad_id,
 * window_start_ms, impressions, clicks, spend_micros, final) or of orders
 * pipelines (record_uuid, version, region, order_id, order_time_ms,
 * amount_micros, currency, optional ad_id), spelled exactly so.  Integers
 * must be JSON integers, counts and amounts not negative, the version at
 * least 1; the record_uuid must be the one adstream derives from the
 * region and the window (or order), so a record cannot claim another's key.
 *
 * The JSON itself is parsed by PostgreSQL's own parser (common/jsonapi.h)
 * with semantic callbacks.  Before it runs, the bytes are checked for valid
 * UTF-8 and for nesting depth: the parser recurses and would raise a
 * stack-depth error (aborting the whole batch) on pathological input.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

#include "event_key.h"
#include "event_parse.h"
#include "timeparse.h"

/* PostgreSQL 16 made the semantic callbacks return an error code. */
#if PG_VERSION_NUM >= 160000
#define JSON_CB_RETURN JsonParseErrorType
#define JSON_CB_DONE return JSON_SUCCESS
#else
#define JSON_CB_RETURN void
#define JSON_CB_DONE return
#endif

/*
 * Largest accepted cost of one event: a million currency units, in micros.
 * A (minute, ad) total in bigint micros then needs over 9 million maximal
 * events to overflow, and the core checks even that.
 */
#define MAX_COST_UNITS INT64CONST(1000000)

/* Largest accepted order amount, in currency units. */
#define MAX_AMOUNT_UNITS INT64CONST(1000000000)

/* Longest detail message stored with a dead letter, in bytes. */
#define MAX_DETAIL_BYTES 1000

typedef enum Field
{
	F_EVENT_ID,
	F_EVENT_TYPE,
	F_AD_ID,
	F_EVENT_TIME,
	F_USER_ID,
	F_CAMPAIGN_ID,
	F_ADVERTISER_ID,
	F_STORE_ID,
	F_COST,
	F_REGION,
	NUM_EVENT_FIELDS
} Field;

typedef enum OrderField
{
	O_ORDER_ID,
	O_USER_ID,
	O_STORE_ID,
	O_ORDER_TIME,
	O_AMOUNT,
	O_CURRENCY,
	NUM_ORDER_FIELDS
} OrderField;

/* Fields of an output record read back by a union pipeline. */
typedef enum RecordField
{
	R_RECORD_UUID,
	R_VERSION,
	R_REGION,
	R_AD_ID,
	R_WINDOW_START_MS,
	R_IMPRESSIONS,
	R_CLICKS,
	R_SPEND_MICROS,
	R_FINAL,
	R_ORDER_ID,
	R_ORDER_TIME_MS,
	R_AMOUNT_MICROS,
	R_CURRENCY,
	NUM_RECORD_FIELDS
} RecordField;

/* Room for the fields of any message kind. */
#define NUM_FIELDS Max((int) NUM_EVENT_FIELDS, (int) NUM_RECORD_FIELDS)

typedef struct FieldName
{
	const char *name;
	int			len;			/* strlen(name): most names differ in length */
	int			field;			/* a Field or an OrderField */
} FieldName;

#define FIELD(name, f) {name, sizeof(name) - 1, f}

/* Every accepted spelling of every field of an ad event. */
static const FieldName event_field_names[] = {
	FIELD("event_id", F_EVENT_ID), FIELD("eventId", F_EVENT_ID),
	FIELD("event_type", F_EVENT_TYPE), FIELD("eventType", F_EVENT_TYPE),
	FIELD("type", F_EVENT_TYPE),
	FIELD("ad_id", F_AD_ID), FIELD("adId", F_AD_ID),
	FIELD("event_time", F_EVENT_TIME), FIELD("eventTime", F_EVENT_TIME),
	FIELD("timestamp", F_EVENT_TIME),
	FIELD("user_id", F_USER_ID), FIELD("userId", F_USER_ID),
	FIELD("campaign_id", F_CAMPAIGN_ID), FIELD("campaignId", F_CAMPAIGN_ID),
	FIELD("campaign", F_CAMPAIGN_ID),
	FIELD("advertiser_id", F_ADVERTISER_ID), FIELD("advertiserId", F_ADVERTISER_ID),
	FIELD("advertiser", F_ADVERTISER_ID),
	FIELD("store_id", F_STORE_ID), FIELD("storeId", F_STORE_ID),
	FIELD("store", F_STORE_ID),
	FIELD("cost", F_COST),
	FIELD("region", F_REGION),
};

/* The canonical name, used in rejection details. */
static const char *const event_canonical[NUM_EVENT_FIELDS] = {
	"event_id", "event_type", "ad_id", "event_time", "user_id",
	"campaign_id", "advertiser_id", "store_id", "cost", "region"
};

static const FieldName order_field_names[] = {
	FIELD("order_id", O_ORDER_ID), FIELD("orderId", O_ORDER_ID),
	FIELD("user_id", O_USER_ID), FIELD("userId", O_USER_ID),
	FIELD("store_id", O_STORE_ID), FIELD("storeId", O_STORE_ID),
	FIELD("store", O_STORE_ID),
	FIELD("order_time", O_ORDER_TIME), FIELD("orderTime", O_ORDER_TIME),
	FIELD("timestamp", O_ORDER_TIME),
	FIELD("amount", O_AMOUNT),
	FIELD("currency", O_CURRENCY),
};

static const char *const order_canonical[NUM_ORDER_FIELDS] = {
	"order_id", "user_id", "store_id", "order_time", "amount", "currency"
};

/* Output records are adstream's own: one spelling per field. */
static const FieldName record_field_names[] = {
	FIELD("record_uuid", R_RECORD_UUID), FIELD("version", R_VERSION),
	FIELD("region", R_REGION), FIELD("ad_id", R_AD_ID),
	FIELD("window_start_ms", R_WINDOW_START_MS), FIELD("impressions", R_IMPRESSIONS),
	FIELD("clicks", R_CLICKS), FIELD("spend_micros", R_SPEND_MICROS),
	FIELD("final", R_FINAL), FIELD("order_id", R_ORDER_ID),
	FIELD("order_time_ms", R_ORDER_TIME_MS), FIELD("amount_micros", R_AMOUNT_MICROS),
	FIELD("currency", R_CURRENCY),
};

static const char *const record_canonical[NUM_RECORD_FIELDS] = {
	"record_uuid", "version", "region", "ad_id", "window_start_ms", "impressions",
	"clicks", "spend_micros", "final", "order_id", "order_time_ms", "amount_micros",
	"currency"
};

/* The fields of one kind of message. */
typedef struct MessageSchema
{
	const FieldName *names;
	int			nnames;
	const char *const *canonical;
	const int  *required;
	int			nrequired;
} MessageSchema;

static const int event_required[] = {F_EVENT_ID, F_EVENT_TYPE, F_AD_ID,
F_EVENT_TIME, F_USER_ID};
static const int order_required[] = {O_ORDER_ID, O_USER_ID, O_STORE_ID,
O_ORDER_TIME, O_AMOUNT, O_CURRENCY};

static const int stats_record_required[] = {R_RECORD_UUID, R_VERSION, R_REGION,
	R_AD_ID, R_WINDOW_START_MS, R_IMPRESSIONS, R_CLICKS, R_SPEND_MICROS, R_FINAL};
static const int order_record_required[] = {R_RECORD_UUID, R_VERSION, R_REGION,
R_ORDER_ID, R_ORDER_TIME_MS, R_AMOUNT_MICROS, R_CURRENCY};

static const MessageSchema event_schema = {
	event_field_names, lengthof(event_field_names), event_canonical,
	event_required, lengthof(event_required)
};
static const MessageSchema order_schema = {
	order_field_names, lengthof(order_field_names), order_canonical,
	order_required, lengthof(order_required)
};
static const MessageSchema stats_record_schema = {
	record_field_names, lengthof(record_field_names), record_canonical,
	stats_record_required, lengthof(stats_record_required)
};
static const MessageSchema order_record_schema = {
	record_field_names, lengthof(record_field_names), record_canonical,
	order_record_required, lengthof(order_record_required)
};

/* State of one parse, shared by the semantic callbacks. */
typedef struct ParseState
{
	const MessageSchema *schema;
	int			depth;			/* nesting: 1 inside the top-level object */
	int			field;			/* known field whose value comes next, or -1 */
	AdstreamReject error;		/* first problem found, or ADSTREAM_ACCEPT */
	char	   *detail;
	const char *name_used[NUM_FIELDS];	/* spelling seen, NULL if absent */
	char	   *value[NUM_FIELDS];	/* scalar token, de-escaped */
	JsonTokenType type[NUM_FIELDS];
} ParseState;

const char *
adstream_reject_code(AdstreamReject reason)
{
	switch (reason)
	{
		case ADSTREAM_ACCEPT:
			return "accepted";
		case ADSTREAM_REJECT_OVERSIZED:
			return "oversized";
		case ADSTREAM_REJECT_INVALID_UTF8:
			return "invalid_utf8";
		case ADSTREAM_REJECT_MALFORMED_JSON:
			return "malformed_json";
		case ADSTREAM_REJECT_TOO_DEEPLY_NESTED:
			return "too_deeply_nested";
		case ADSTREAM_REJECT_DUPLICATE_FIELD:
			return "duplicate_field";
		case ADSTREAM_REJECT_MISSING_FIELD:
			return "missing_field";
		case ADSTREAM_REJECT_WRONG_TYPE:
			return "wrong_type";
		case ADSTREAM_REJECT_INVALID_VALUE:
			return "invalid_value";
		case ADSTREAM_REJECT_UNKNOWN_EVENT_TYPE:
			return "unknown_event_type";
		case ADSTREAM_REJECT_TOO_OLD:
			return "too_old";
		case ADSTREAM_REJECT_TOO_FAR_IN_FUTURE:
			return "too_far_in_future";
		case ADSTREAM_REJECT_WRONG_REGION:
			return "wrong_region";
	}
	return "unknown";
}

/* Record the first problem only; later ones are consequences. */
static void
fail(ParseState *st, AdstreamReject reason, char *detail)
{
	if (st->error == ADSTREAM_ACCEPT)
	{
		st->error = reason;
		st->detail = detail;
	}
}

static const char *
token_kind(JsonTokenType t)
{
	switch (t)
	{
		case JSON_TOKEN_STRING:
			return "a string";
		case JSON_TOKEN_NUMBER:
			return "a number";
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			return "a boolean";
		case JSON_TOKEN_NULL:
			return "null";
		case JSON_TOKEN_OBJECT_START:
			return "an object";
		case JSON_TOKEN_ARRAY_START:
			return "an array";
		default:
			return "not a value";
	}
}

static JSON_CB_RETURN
cb_object_start(void *state)
{
	ParseState *st = (ParseState *) state;

	if (st->depth == 1 && st->field >= 0)
		fail(st, ADSTREAM_REJECT_WRONG_TYPE,
			 psprintf("field \"%s\" is an object", st->name_used[st->field]));
	st->depth++;
	JSON_CB_DONE;
}

static JSON_CB_RETURN
cb_array_start(void *state)
{
	ParseState *st = (ParseState *) state;

	if (st->depth == 0)
		fail(st, ADSTREAM_REJECT_WRONG_TYPE,
			 pstrdup("message is a JSON array, not an object"));
	else if (st->depth == 1 && st->field >= 0)
		fail(st, ADSTREAM_REJECT_WRONG_TYPE,
			 psprintf("field \"%s\" is an array", st->name_used[st->field]));
	st->depth++;
	JSON_CB_DONE;
}

static JSON_CB_RETURN
cb_struct_end(void *state)
{
	ParseState *st = (ParseState *) state;

	st->depth--;
	st->field = -1;
	JSON_CB_DONE;
}

static JSON_CB_RETURN
cb_field_start(void *state, char *fname, bool isnull)
{
	ParseState *st = (ParseState *) state;
	int			len;

	st->field = -1;
	if (st->depth != 1)
		JSON_CB_DONE;
	len = strlen(fname);
	for (int i = 0; i < st->schema->nnames; i++)
	{
		const FieldName *fn = &st->schema->names[i];
		int			f;

		if (fn->len != len || memcmp(fname, fn->name, len) != 0)
			continue;
		f = fn->field;
		if (st->name_used[f] != NULL)
		{
			if (strcmp(st->name_used[f], fname) == 0)
				fail(st, ADSTREAM_REJECT_DUPLICATE_FIELD,
					 psprintf("field \"%s\" appears more than once", fname));
			else
				fail(st, ADSTREAM_REJECT_DUPLICATE_FIELD,
					 psprintf("field \"%s\" is given twice, as \"%s\" and \"%s\"",
							  st->schema->canonical[f], st->name_used[f], fname));
			JSON_CB_DONE;
		}
		st->name_used[f] = fn->name;
		st->field = f;
		break;
	}
	JSON_CB_DONE;
}

static JSON_CB_RETURN
cb_scalar(void *state, char *token, JsonTokenType tokentype)
{
	ParseState *st = (ParseState *) state;

	if (st->depth == 0)
		fail(st, ADSTREAM_REJECT_WRONG_TYPE,
			 psprintf("message is %s, not a JSON object", token_kind(tokentype)));
	else if (st->depth == 1 && st->field >= 0)
	{
		st->value[st->field] = token;
		st->type[st->field] = tokentype;
	}
	st->field = -1;
	JSON_CB_DONE;
}

/*
 * Check that the bytes are UTF-8 without NUL, and that objects and arrays
 * nest no deeper than ADSTREAM_MAX_JSON_DEPTH.  The depth scan only tracks
 * whether it is inside a string; the parser proper judges the syntax.
 */
static AdstreamReject
check_bytes(const char *data, int len, char **detail)
{
	int			valid;
	int			depth = 0;
	int			brackets = 0;
	bool		in_string = false;

	valid = pg_encoding_verifymbstr(PG_UTF8, data, len);
	if (valid < len)
	{
		if (data[valid] == '\0')
		{
			*detail = psprintf("message contains a NUL byte at byte %d", valid);
			return ADSTREAM_REJECT_MALFORMED_JSON;
		}
		*detail = psprintf("invalid UTF-8 byte sequence at byte %d", valid);
		return ADSTREAM_REJECT_INVALID_UTF8;
	}
	/* fewer brackets than the limit cannot nest deeper than it */
	for (int i = 0; i < len; i++)
		brackets += (data[i] == '{') | (data[i] == '[');
	if (brackets <= ADSTREAM_MAX_JSON_DEPTH)
		return ADSTREAM_ACCEPT;
	for (int i = 0; i < len; i++)
	{
		char		c = data[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[')
		{
			if (++depth > ADSTREAM_MAX_JSON_DEPTH)
			{
				*detail = psprintf("JSON nests deeper than %d levels",
								   ADSTREAM_MAX_JSON_DEPTH);
				return ADSTREAM_REJECT_TOO_DEEPLY_NESTED;
			}
		}
		else if (c == '}' || c == ']')
			depth--;
	}
	return ADSTREAM_ACCEPT;
}

/* Is a JSON number token an integer (no fraction, no exponent)? */
static bool
is_integer_token(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Quote a value for a detail message, shortened to keep details small. */
static char *
quoted(const char *s)
{
	int			len = strlen(s);

	if (len > 64)
		len = pg_mbcliplen(s, len, 64);
	return psprintf("\"%.*s%s\"", len, s, s[len] ? "..." : "");
}

/*
 * An identifier: a non-empty string, or an integer number, copied into the
 * caller's context.  Returns NULL (with the failure recorded) otherwise.
 */
static char *
take_id(ParseState *st, int f, bool integer_ok, MemoryContext out_cxt)
{
	const char *v = st->value[f];
	JsonTokenType t = st->type[f];
	size_t		len;

	if (t == JSON_TOKEN_NUMBER && integer_ok)
	{
		if (!is_integer_token(v))
		{
			fail(st, ADSTREAM_REJECT_WRONG_TYPE,
				 psprintf("field \"%s\" is a number but not an integer",
						  st->name_used[f]));
			return NULL;
		}
	}
	else if (t != JSON_TOKEN_STRING)
	{
		fail(st, ADSTREAM_REJECT_WRONG_TYPE,
			 psprintf("field \"%s\" is %s, not a string%s", st->name_used[f],
					  token_kind(t), integer_ok ? " or an integer" : ""));
		return NULL;
	}
	len = strlen(v);
	if (len == 0)
	{
		fail(st, ADSTREAM_REJECT_INVALID_VALUE,
			 psprintf("field \"%s\" is empty", st->name_used[f]));
		return NULL;
	}
	if (len > ADSTREAM_MAX_ID_BYTES)
	{
		fail(st, ADSTREAM_REJECT_INVALID_VALUE,
			 psprintf("field \"%s\" is longer than %d bytes",
					  st->name_used[f], ADSTREAM_MAX_ID_BYTES));
		return NULL;
	}
	return MemoryContextStrdup(out_cxt, v);
}

/*
 * A decimal amount as integer millionths.  Accepts JSON number syntax
 * (sign, digits, fraction, exponent); refuses negatives, more than six
 * decimal places and amounts above MAX_COST_MICROS.
 */
static bool
parse_micros(const char *s, int64 max_units, int64 *out, const char **why)
{
	char		digits[32];
	int			ndigits = 0;
	int			pending_zeros = 0;	/* zeros not yet known to be trailing */
	int			scale = 0;		/* value = digits * 10^-scale */
	bool		neg = false;
	bool		any = false;
	bool		frac = false;
	int64		v = 0;
	int			shift;

	*why = "is not a decimal number";
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	for (;; s++)
	{
		if (*s == '.' && !frac)
		{
			frac = true;
			continue;
		}
		if (*s < '0' || *s > '9')
			break;
		any = true;
		if (frac)
			scale++;
		if (*s == '0')
		{
			if (ndigits > 0)
				pending_zeros++;	/* leading zeros are dropped */
			continue;
		}
		if (ndigits + pending_zeros + 1 > lengthof(digits))
			goto too_large;
		for (; pending_zeros > 0; pending_zeros--)
			digits[ndigits++] = '0';
		digits[ndigits++] = *s;
	}
	if (!any)
		return false;
	if (*s == 'e' || *s == 'E')
	{
		bool		eneg = false;
		int			e = 0;

		s++;
		if (*s == '-' || *s == '+')
			eneg = *s++ == '-';
		if (*s < '0' || *s > '9')
			return false;
		for (; *s >= '0' && *s <= '9'; s++)
			if (e < 1000)
				e = e * 10 + (*s - '0');
		scale += eneg ? e : -e;
	}
	if (*s != '\0')
		return false;
	/* trailing zeros only scale the significant digits */
	scale -= pending_zeros;
	if (ndigits == 0)
	{
		*out = 0;
		return true;
	}
	if (neg)
	{
		*why = "is negative";
		return false;
	}
	shift = 6 - scale;
	if (shift < 0)
	{
		*why = "has more than 6 decimal places";
		return false;
	}
	if (ndigits + shift > 16)
		goto too_large;
	for (int i = 0; i < ndigits; i++)
		v = v * 10 + (digits[i] - '0');
	for (int i = 0; i < shift; i++)
		v *= 10;
	if (v > max_units * 1000000)
		goto too_large;
	*out = v;
	return true;

too_large:
	*why = psprintf("is larger than " INT64_FORMAT, max_units);
	return false;
}

/*
 * Check the bytes and parse the JSON of a message of the given schema into
 * *st, in scratch_cxt; then check that the required fields are there.
 * Returns a rejection before parsing (the message is not JSON at all), or
 * ADSTREAM_ACCEPT with any later problem recorded in st->error.
 */
static AdstreamReject
parse_message(const MessageSchema *schema, const char *data, int len,
			  int max_bytes, MemoryContext scratch_cxt, ParseState *st,
			  char **detail)
{
	MemoryContext oldcxt;
	AdstreamReject r;
	JsonSemAction sem;
	JsonLexContext *lex;
	JsonParseErrorType jerr;

	*detail = NULL;
	if (len > max_bytes)
	{
		*detail = psprintf("message is %d bytes, more than max_message_bytes %d",
						   len, max_bytes);
		return ADSTREAM_REJECT_OVERSIZED;
	}
	if (len == 0)
	{
		*detail = pstrdup("message is empty");
		return ADSTREAM_REJECT_MALFORMED_JSON;
	}
	r = check_bytes(data, len, detail);
	if (r != ADSTREAM_ACCEPT)
		return r;

	oldcxt = MemoryContextSwitchTo(scratch_cxt);
	memset(st, 0, sizeof(*st));
	st->schema = schema;
	st->field = -1;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = st;
	sem.object_start = cb_object_start;
	sem.object_end = cb_struct_end;
	sem.array_start = cb_array_start;
	sem.array_end = cb_struct_end;
	sem.object_field_start = cb_field_start;
	sem.scalar = cb_scalar;
#if PG_VERSION_NUM >= 170000
	lex = makeJsonLexContextCstringLen(NULL, data, len, PG_UTF8, true);
#else
	lex = makeJsonLexContextCstringLen((char *) data, len, PG_UTF8, true);
#endif
	jerr = pg_parse_json(lex, &sem);
	if (jerr != JSON_SUCCESS)
	{
		/* a syntax error outranks whatever the callbacks saw before it */
		st->error = ADSTREAM_ACCEPT;
		if (jerr == JSON_UNICODE_CODE_POINT_ZERO)
			fail(st, ADSTREAM_REJECT_INVALID_VALUE,
				 pstrdup("a string contains \\u0000, which text cannot hold"));
		else
			fail(st, ADSTREAM_REJECT_MALFORMED_JSON,
				 psprintf("invalid JSON: %s", json_errdetail(jerr, lex)));
	}

	for (int i = 0; i < schema->nrequired && st->error == ADSTREAM_ACCEPT; i++)
	{
		int			f = schema->required[i];

		if (st->name_used[f] == NULL)
			fail(st, ADSTREAM_REJECT_MISSING_FIELD,
				 psprintf("required field \"%s\" is missing", schema->canonical[f]));
		else if (st->type[f] == JSON_TOKEN_NULL)
			fail(st, ADSTREAM_REJECT_MISSING_FIELD,
				 psprintf("required field \"%s\" is null", st->name_used[f]));
	}
	MemoryContextSwitchTo(oldcxt);
	return ADSTREAM_ACCEPT;
}

/* A time field: ISO-8601 string, or epoch milliseconds (number or string). */
static void
take_time(ParseState *st, int f, TimestampTz *out)
{
	const char *v = st->value[f];
	const char *why = NULL;
	bool		ok = false;

	if (st->type[f] == JSON_TOKEN_NUMBER)
	{
		if (!is_integer_token(v))
		{
			fail(st, ADSTREAM_REJECT_WRONG_TYPE,
				 psprintf("field \"%s\" is a number but not an integer of epoch milliseconds",
						  st->name_used[f]));
			return;
		}
		ok = adstream_parse_epoch_millis(v, strlen(v), out, &why);
	}
	else if (st->type[f] == JSON_TOKEN_STRING)
	{
		if (is_integer_token(v))
			ok = adstream_parse_epoch_millis(v, strlen(v), out, &why);
		else
			ok = adstream_parse_iso8601(v, strlen(v), out, &why);
	}
	else
	{
		fail(st, ADSTREAM_REJECT_WRONG_TYPE,
			 psprintf("field \"%s\" is %s, not a string or an integer",
					  st->name_used[f], token_kind(st->type[f])));
		return;
	}
	if (!ok)
		fail(st, ADSTREAM_REJECT_INVALID_VALUE,
			 psprintf("%s %s: %s", st->schema->canonical[f], why, quoted(v)));
}

/* A decimal amount field (number or numeric string) in micros. */
static bool
take_micros(ParseState *st, int f, int64 max_units, int64 *out)
{
	const char *why;

	if (st->type[f] != JSON_TOKEN_NUMBER && st->type[f] != JSON_TOKEN_STRING)
		fail(st, ADSTREAM_REJECT_WRONG_TYPE,
			 psprintf("field \"%s\" is %s, not a number", st->name_used[f],
					  token_kind(st->type[f])));
	else if (!parse_micros(st->value[f], max_units, out, &why))
		fail(st, ADSTREAM_REJECT_INVALID_VALUE,
			 psprintf("%s %s %s", st->schema->canonical[f], quoted(st->value[f]), why));
	else
		return true;
	return false;
}

/* The detail of a rejection, copied out of the scratch context and shortened. */
static AdstreamReject
finish(ParseState *st, char **detail)
{
	if (st->error != ADSTREAM_ACCEPT)
	{
		int			dlen = strlen(st->detail);

		/* details quote input (e.g. a bad JSON token): keep them short */
		if (dlen > MAX_DETAIL_BYTES)
			dlen = pg_mbcliplen(st->detail, dlen, MAX_DETAIL_BYTES);
		*detail = pnstrdup(st->detail, dlen);
	}
	return st->error;
}

AdstreamReject
adstream_parse_event(const char *data, int len, int max_bytes,
					 MemoryContext scratch_cxt, AdstreamEvent *event,
					 char **detail)
{
	MemoryContext out_cxt = CurrentMemoryContext;
	MemoryContext oldcxt;
	AdstreamReject r;
	ParseState	st;
	static const Field optional_ids[] = {F_CAMPAIGN_ID, F_ADVERTISER_ID,
	F_STORE_ID, F_REGION};
	char	  **optional_out[] = {&event->campaign_id, &event->advertiser_id,
	&event->store_id, &event->region};

	memset(event, 0, sizeof(*event));
	r = parse_message(&event_schema, data, len, max_bytes, scratch_cxt, &st, detail);
	if (r != ADSTREAM_ACCEPT)
		return r;
	oldcxt = MemoryContextSwitchTo(scratch_cxt);

	if (st.error == ADSTREAM_ACCEPT)
	{
		event->event_id = take_id(&st, F_EVENT_ID, true, out_cxt);
		event->ad_id = take_id(&st, F_AD_ID, true, out_cxt);
		event->user_id = take_id(&st, F_USER_ID, true, out_cxt);
	}

	/* event type */
	if (st.error == ADSTREAM_ACCEPT)
	{
		const char *v = st.value[F_EVENT_TYPE];

		if (st.type[F_EVENT_TYPE] != JSON_TOKEN_STRING)
			fail(&st, ADSTREAM_REJECT_WRONG_TYPE,
				 psprintf("field \"%s\" is %s, not a string",
						  st.name_used[F_EVENT_TYPE],
						  token_kind(st.type[F_EVENT_TYPE])));
		else if (pg_strcasecmp(v, "impression") == 0)
			event->is_click = false;
		else if (pg_strcasecmp(v, "click") == 0)
			event->is_click = true;
		else
			fail(&st, ADSTREAM_REJECT_UNKNOWN_EVENT_TYPE,
				 psprintf("event type %s is neither impression nor click",
						  quoted(v)));
	}

	if (st.error == ADSTREAM_ACCEPT)
		take_time(&st, F_EVENT_TIME, &event->event_time);

	/* optional dimensions */
	for (int i = 0; i < lengthof(optional_ids) && st.error == ADSTREAM_ACCEPT; i++)
	{
		Field		f = optional_ids[i];

		if (st.name_used[f] != NULL && st.type[f] != JSON_TOKEN_NULL)
			*optional_out[i] = take_id(&st, f, f != F_REGION, out_cxt);
	}

	/* cost */
	if (st.error == ADSTREAM_ACCEPT && st.name_used[F_COST] != NULL &&
		st.type[F_COST] != JSON_TOKEN_NULL)
		event->has_cost = take_micros(&st, F_COST, MAX_COST_UNITS, &event->cost_micros);

	if (st.error == ADSTREAM_ACCEPT)
		adstream_event_key(event->event_id, strlen(event->event_id), event->key);

	MemoryContextSwitchTo(oldcxt);
	return finish(&st, detail);
}

static bool
is_letter(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* A currency field: three letters (ISO 4217), returned upper-case in out_cxt. */
static char *
take_currency(ParseState *st, int f, MemoryContext out_cxt)
{
	const char *v = st->value[f];
	char	   *out;

	if (st->type[f] != JSON_TOKEN_STRING)
	{
		fail(st, ADSTREAM_REJECT_WRONG_TYPE,
			 psprintf("field \"%s\" is %s, not a string", st->name_used[f],
					  token_kind(st->type[f])));
		return NULL;
	}
	if (strlen(v) != 3 || !is_letter(v[0]) || !is_letter(v[1]) || !is_letter(v[2]))
	{
		fail(st, ADSTREAM_REJECT_INVALID_VALUE,
			 psprintf("currency %s is not a three-letter ISO 4217 code", quoted(v)));
		return NULL;
	}
	out = MemoryContextAlloc(out_cxt, 4);
	for (int i = 0; i < 3; i++)
		out[i] = pg_ascii_toupper((unsigned char) v[i]);
	out[3] = '\0';
	return out;
}

AdstreamReject
adstream_parse_order(const char *data, int len, int max_bytes,
					 MemoryContext scratch_cxt, AdstreamOrder *order,
					 char **detail)
{
	MemoryContext out_cxt = CurrentMemoryContext;
	MemoryContext oldcxt;
	AdstreamReject r;
	ParseState	st;

	memset(order, 0, sizeof(*order));
	r = parse_message(&order_schema, data, len, max_bytes, scratch_cxt, &st, detail);
	if (r != ADSTREAM_ACCEPT)
		return r;
	oldcxt = MemoryContextSwitchTo(scratch_cxt);

	if (st.error == ADSTREAM_ACCEPT)
	{
		order->order_id = take_id(&st, O_ORDER_ID, true, out_cxt);
		order->user_id = take_id(&st, O_USER_ID, true, out_cxt);
		order->store_id = take_id(&st, O_STORE_ID, true, out_cxt);
	}
	if (st.error == ADSTREAM_ACCEPT)
		take_time(&st, O_ORDER_TIME, &order->order_time);
	if (st.error == ADSTREAM_ACCEPT)
		take_micros(&st, O_AMOUNT, MAX_AMOUNT_UNITS, &order->amount_micros);
	if (st.error == ADSTREAM_ACCEPT)
		order->currency = take_currency(&st, O_CURRENCY, out_cxt);
	if (st.error == ADSTREAM_ACCEPT)
		adstream_event_key(order->order_id, strlen(order->order_id), order->key);

	MemoryContextSwitchTo(oldcxt);
	return finish(&st, detail);
}

/*
 * An integer field (a JSON number without fraction or exponent) of at
 * least min.  Returns false, with the failure recorded, otherwise.
 */
static bool
take_int64(ParseState *st, int f, int64 min, int64 *out)
{
	const char *v = st->value[f];
	bool		neg = (*v == '-');
	bool		overflow = false;
	int64		n = 0;

	if (st->type[f] != JSON_TOKEN_NUMBER || !is_integer_token(v))
	{
		fail(st, ADSTREAM_REJECT_WRONG_TYPE,
			 psprintf("field \"%s\" is %s, not an integer", st->name_used[f],
					  st->type[f] == JSON_TOKEN_NUMBER ? "a fraction" :
					  token_kind(st->type[f])));
		return false;
	}
	/* accumulate negatively: the range reaches one further below zero */
	for (const char *c = neg ? v + 1 : v; *c && !overflow; c++)
		overflow = pg_mul_s64_overflow(n, 10, &n) || pg_sub_s64_overflow(n, *c - '0', &n);
	if (overflow || (!neg && pg_mul_s64_overflow(n, -1, &n)))
	{
		fail(st, ADSTREAM_REJECT_INVALID_VALUE,
			 psprintf("%s %s is out of the bigint range", record_canonical[f], quoted(v)));
		return false;
	}
	if (n < min)
	{
		fail(st, ADSTREAM_REJECT_INVALID_VALUE,
			 psprintf("%s %s is less than " INT64_FORMAT, record_canonical[f], quoted(v), min));
		return false;
	}
	*out = n;
	return true;
}

/*
 * Epoch milliseconds of a record's time field: an integer that is a
 * timestamp (years 1970 to 9999), so SQL can convert it without error.
 */
static bool
take_millis(ParseState *st, int f, int64 *ms)
{
	const char *why;
	TimestampTz ts;

	if (!take_int64(st, f, 0, ms))
		return false;
	if (adstream_parse_epoch_millis(st->value[f], strlen(st->value[f]), &ts, &why))
		return true;
	fail(st, ADSTREAM_REJECT_INVALID_VALUE,
		 psprintf("%s %s: %s", record_canonical[f], quoted(st->value[f]), why));
	return false;
}

AdstreamReject
adstream_parse_record(const char *data, int len, int max_bytes, bool orders,
					  MemoryContext scratch_cxt, AdstreamRecord *rec, char **detail)
{
	MemoryContext out_cxt = CurrentMemoryContext;
	MemoryContext oldcxt;
	AdstreamReject r;
	ParseState	st;
	uint8		claimed[16];
	char	   *key_id = NULL;	/* ad id, or order id */
	int64		ms = 0;			/* window start, or order time */
	int64		n;

	memset(rec, 0, sizeof(*rec));
	r = parse_message(orders ? &order_record_schema : &stats_record_schema,
					  data, len, max_bytes, scratch_cxt, &st, detail);
	if (r != ADSTREAM_ACCEPT)
		return r;
	oldcxt = MemoryContextSwitchTo(scratch_cxt);

	if (st.error == ADSTREAM_ACCEPT)
	{
		const char *u = st.value[R_RECORD_UUID];

		if (st.type[R_RECORD_UUID] != JSON_TOKEN_STRING)
			fail(&st, ADSTREAM_REJECT_WRONG_TYPE,
				 psprintf("field \"record_uuid\" is %s, not a string",
						  token_kind(st.type[R_RECORD_UUID])));
		else if (!adstream_parse_uuid(u, strlen(u), claimed))
			fail(&st, ADSTREAM_REJECT_INVALID_VALUE,
				 psprintf("record_uuid %s is not a UUID", quoted(u)));
	}
	if (st.error == ADSTREAM_ACCEPT)
		take_int64(&st, R_VERSION, 1, &rec->version);
	if (st.error == ADSTREAM_ACCEPT)
	{
		rec->region = take_id(&st, R_REGION, false, out_cxt);
		if (rec->region != NULL && !adstream_valid_region(rec->region))
			fail(&st, ADSTREAM_REJECT_INVALID_VALUE,
				 psprintf("region %s is not a region name", quoted(rec->region)));
	}
	if (st.error == ADSTREAM_ACCEPT)
		key_id = take_id(&st, orders ? R_ORDER_ID : R_AD_ID, false, scratch_cxt);
	if (st.error == ADSTREAM_ACCEPT)
		take_millis(&st, orders ? R_ORDER_TIME_MS : R_WINDOW_START_MS, &ms);
	if (!orders)
	{
		if (st.error == ADSTREAM_ACCEPT && ms % 60000 != 0)
			fail(&st, ADSTREAM_REJECT_INVALID_VALUE,
				 psprintf("window_start_ms %s is not the start of a minute",
						  quoted(st.value[R_WINDOW_START_MS])));
		for (int f = R_IMPRESSIONS; f <= R_SPEND_MICROS && st.error == ADSTREAM_ACCEPT; f++)
			take_int64(&st, f, 0, &n);
		if (st.error == ADSTREAM_ACCEPT && st.type[R_FINAL] != JSON_TOKEN_TRUE &&
			st.type[R_FINAL] != JSON_TOKEN_FALSE)
			fail(&st, ADSTREAM_REJECT_WRONG_TYPE,
				 psprintf("field \"final\" is %s, not a boolean", token_kind(st.type[R_FINAL])));
		if (st.error == ADSTREAM_ACCEPT)
			adstream_window_key(rec->region, key_id, ms, rec->uuid);
	}
	else
	{
		if (st.error == ADSTREAM_ACCEPT)
			take_int64(&st, R_AMOUNT_MICROS, 0, &n);
		if (st.error == ADSTREAM_ACCEPT)
			(void) take_currency(&st, R_CURRENCY, scratch_cxt);
		if (st.error == ADSTREAM_ACCEPT && st.name_used[R_AD_ID] != NULL &&
			st.type[R_AD_ID] != JSON_TOKEN_NULL)
			(void) take_id(&st, R_AD_ID, false, scratch_cxt);
		if (st.error == ADSTREAM_ACCEPT)
			adstream_order_record_key(rec->region, strlen(rec->region), key_id,
									  strlen(key_id), rec->uuid);
	}
	if (st.error == ADSTREAM_ACCEPT && memcmp(claimed, rec->uuid, 16) != 0)
		fail(&st, ADSTREAM_REJECT_INVALID_VALUE,
			 psprintf("record_uuid %s is not the UUID of its %s",
					  quoted(st.value[R_RECORD_UUID]),
					  orders ? "region and order_id" : "region, ad_id and window_start_ms"));

	MemoryContextSwitchTo(oldcxt);
	return finish(&st, detail);
}
