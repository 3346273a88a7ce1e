/*-------------------------------------------------------------------------
 *
 * timeparse.c
 *	  Event-time parsing for ad events.
 *
 * PostgreSQL 15's timestamptz input function reports errors with ereport,
 * which would abort the whole batch; an ad event with a bad time must
 * instead become a dead letter.  So event times are parsed here, strictly:
 *
 *	  ISO-8601:	YYYY-MM-DD(T|t| )HH:MM[:SS[(.|,)fraction]][Z|z|(+|-)HH[[:]MM]]
 *				a time without a zone is taken as UTC; digits of the fraction
 *				past microseconds are dropped.
 *	  epoch ms:	an optionally signed integer of milliseconds since
 *				1970-01-01T00:00:00Z.
 *
 * Accepted instants lie in years 1970 to 9999.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "timeparse.h"

/* Milliseconds from 1970-01-01 to 10000-01-01. */
#define MAX_EPOCH_MS	INT64CONST(253402300800000)

/* Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01). */
#define UNIX_TO_PG_USECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64
days_from_civil(int y, int m, int d)
{
	int			era;
	int			yoe;
	int			doy;
	int			doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int64) era * 146097 + doe - 719468;
}

static bool
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Read exactly n digits at s[*pos]; false if any is not a digit. */
static bool
read_digits(const char *s, int len, int *pos, int n, int *value)
{
	int			v = 0;

	if (*pos + n > len)
		return false;
	for (int i = 0; i < n; i++)
	{
		char		c = s[*pos + i];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*pos += n;
	*value = v;
	return true;
}

bool
adstream_parse_iso8601(const char *s, int len, TimestampTz *result,
					   const char **why)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			pos = 0;
	int			year,
				month,
				day,
				hour,
				minute,
				second = 0;
	int64		usec = 0;
	int			offset_secs = 0;
	int64		unix_usecs;

	*why = "is not an ISO-8601 date and time";
	if (!read_digits(s, len, &pos, 4, &year) ||
		pos >= len || s[pos++] != '-' ||
		!read_digits(s, len, &pos, 2, &month) ||
		pos >= len || s[pos++] != '-' ||
		!read_digits(s, len, &pos, 2, &day))
		return false;
	if (pos >= len || (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' '))
	{
		*why = "has a date but no time of day";
		return false;
	}
	pos++;
	if (!read_digits(s, len, &pos, 2, &hour) ||
		pos >= len || s[pos++] != ':' ||
		!read_digits(s, len, &pos, 2, &minute))
		return false;
	if (pos < len && s[pos] == ':')
	{
		pos++;
		if (!read_digits(s, len, &pos, 2, &second))
			return false;
		if (pos < len && (s[pos] == '.' || s[pos] == ','))
		{
			int			ndigits = 0;

			pos++;
			while (pos < len && s[pos] >= '0' && s[pos] <= '9')
			{
				if (ndigits < 6)
					usec = usec * 10 + (s[pos] - '0');
				ndigits++;
				pos++;
			}
			if (ndigits == 0)
				return false;
			for (int i = ndigits; i < 6; i++)
				usec *= 10;
		}
	}
	if (pos < len)
	{
		char		c = s[pos++];

		if (c == 'Z' || c == 'z')
			offset_secs = 0;
		else if (c == '+' || c == '-')
		{
			int			oh,
						om = 0;

			if (!read_digits(s, len, &pos, 2, &oh))
				return false;
			if (pos < len)
			{
				if (s[pos] == ':')
					pos++;
				if (!read_digits(s, len, &pos, 2, &om))
					return false;
			}
			if (oh > 18 || om > 59)
			{
				*why = "has an out-of-range time zone offset";
				return false;
			}
			offset_secs = (oh * 3600 + om * 60) * (c == '-' ? -1 : 1);
		}
		else
			return false;
		if (pos != len)
			return false;
	}

	if (year < 1970 || year > 9999 || month < 1 || month > 12 || day < 1 ||
		day > mdays[month - 1] + (month == 2 && is_leap(year)) ||
		hour > 23 || minute > 59 || second > 59)
	{
		*why = "is not a valid date and time in years 1970 to 9999";
		return false;
	}

	unix_usecs = ((days_from_civil(year, month, day) * 86400 +
				   hour * 3600 + minute * 60 + second - offset_secs) *
				  USECS_PER_SEC) + usec;
	if (unix_usecs < 0 || unix_usecs >= MAX_EPOCH_MS * 1000)
	{
		*why = "is not a valid date and time in years 1970 to 9999";
		return false;
	}
	*result = unix_usecs - UNIX_TO_PG_USECS;
	return true;
}

bool
adstream_parse_epoch_millis(const char *s, int len, TimestampTz *result,
							const char **why)
{
	int			pos = 0;
	bool		neg = false;
	int64		ms = 0;

	*why = "is not an integer of epoch milliseconds";
	if (pos < len && (s[pos] == '-' || s[pos] == '+'))
		neg = s[pos++] == '-';
	if (pos >= len)
		return false;
	for (; pos < len; pos++)
	{
		if (s[pos] < '0' || s[pos] > '9')
			return false;
		if (ms > MAX_EPOCH_MS)
			break;				/* already out of range; avoid overflow */
		ms = ms * 10 + (s[pos] - '0');
	}
	if (neg || ms >= MAX_EPOCH_MS || pos < len)
	{
		/* pos < len here means we stopped early on a huge number */
		for (; pos < len; pos++)
			if (s[pos] < '0' || s[pos] > '9')
				return false;
		*why = "in epoch milliseconds is outside years 1970 to 9999";
		return false;
	}
	*result = ms * 1000 - UNIX_TO_PG_USECS;
	return true;
}
