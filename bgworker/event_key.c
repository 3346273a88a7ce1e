/*-------------------------------------------------------------------------
 *
 * event_key.c
 *	  Maps event ids to fixed-width 16-byte deduplication keys, and output
 *	  records to their name-based UUIDs.
 *
 * A fixed-width key keeps the key index small and its comparisons cheap,
 * which matters: every accepted event inserts one key into it.
 * UUID-form ids are used as their 16 bytes (so they compare as UUID values,
 * in any letter case; no hashing, no collisions).  Other ids are hashed with
 * SHA-1 into a version-5 UUID; two distinct ids collide with probability
 * about n^2 / 2^123 for n stored keys, far below any hardware error rate.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <uuid/uuid.h>

#include "lib/stringinfo.h"

#include "event_key.h"

/* Namespace of adstream event ids (a fixed, randomly chosen UUID). */
static const uint8 event_id_namespace[16] = {
	0x6b, 0x2f, 0x0e, 0x91, 0x3c, 0x57, 0x4d, 0x1a,
	0x9e, 0x44, 0xc1, 0x08, 0x7d, 0x5b, 0xa2, 0x36
};

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
adstream_parse_uuid(const char *id, int len, uint8 key[16])
{
	int			j = 0;

	if (len != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' ||
		id[23] != '-')
		return false;
	for (int i = 0; i < 36; i++)
	{
		int			hi,
					lo;

		if (i == 8 || i == 13 || i == 18 || i == 23)
			continue;
		hi = hexval(id[i]);
		lo = hexval(id[i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		key[j++] = (uint8) (hi << 4 | lo);
		i++;
	}
	return true;
}

/* Namespace of adstream's window records (a fixed, randomly chosen UUID). */
static const uint8 window_record_namespace[16] = {
	0x3a, 0x81, 0x5e, 0xc7, 0x12, 0x9d, 0x4b, 0x60,
	0xb4, 0x27, 0x6f, 0xe3, 0x05, 0x98, 0xd1, 0x4c
};

void
adstream_window_key(const char *region, const char *ad_id, int64 window_start_ms,
					uint8 key[16])
{
	/* region, ad id and window start, NUL-separated: no two keys share a name */
	StringInfoData name;

	initStringInfo(&name);
	appendStringInfoString(&name, region);
	appendStringInfoChar(&name, '\0');
	appendStringInfoString(&name, ad_id);
	appendStringInfoChar(&name, '\0');
	appendStringInfo(&name, INT64_FORMAT, window_start_ms);
	uuid_generate_sha1(key, window_record_namespace, name.data, (size_t) name.len);
	pfree(name.data);
}

/* Namespace of adstream's order records (a fixed, randomly chosen UUID). */
static const uint8 order_record_namespace[16] = {
	0xd4, 0x19, 0x73, 0x2e, 0x8b, 0x06, 0x4f, 0xa5,
	0x91, 0x3c, 0x5a, 0xe7, 0x20, 0xbd, 0x68, 0x0f
};

void
adstream_order_record_key(const char *region, int region_len, const char *order_id,
						  int len, uint8 key[16])
{
	/* region and order id, NUL-separated: no two keys share a name */
	StringInfoData name;

	initStringInfo(&name);
	appendBinaryStringInfo(&name, region, region_len);
	appendStringInfoChar(&name, '\0');
	appendBinaryStringInfo(&name, order_id, len);
	uuid_generate_sha1(key, order_record_namespace, name.data, (size_t) name.len);
	pfree(name.data);
}

void
adstream_event_key(const char *id, int len, uint8 key[16])
{
	if (adstream_parse_uuid(id, len, key))
		return;
	uuid_generate_sha1(key, event_id_namespace, id, (size_t) len);
}
