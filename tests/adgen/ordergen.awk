# ordergen.awk: ad events and orders whose attribution is known by
# construction, for tests/kafka_orders.sh.  POSIX awk (mawk or gawk).
#
#   awk -v now_ms=MS -v seed=N -v scenarios=N -v event_parts=N \
#       -v order_parts=N -v dir=DIR -f ordergen.awk </dev/null
#
# The rule it constructs against is the default one of an orders pipeline
# (last_click_then_view, click_window 7 days, view_window 1 day): an order
# goes to the last click of the same user for the same store at or before
# the order time within 7 days; without one, to the last impression within
# 1 day; else it is unattributed.
#
# Each scenario has a user of its own (u-N) and one store, so no scenario's
# events can touch another's orders; it emits the events that decide its
# order(s) and distractors that would win if the pipeline got one detail of
# the rule wrong: a later click or impression by the same user at another
# store or at none, by another user (x-N) at the same store, events after the
# order, a more recent impression than the winning click, clicks and
# impressions just outside their windows.  Every time that matters is at
# least 2 hours away from a window boundary (and at least a second from the
# order time), so the truth holds whatever the server's time zone does to
# "7 days" across a daylight-saving change.  Order times are 5 minutes to
# 2 hours before now_ms, event times up to 9 days before them and up to 4
# minutes after them.
#
# Files written to DIR (COPY text format, tab-separated, no backslashes):
#   events.all       sort key, partition, 0, message      (ad events)
#   orders.all       sort key, kind, partition, 0, message (orders)
#   expected_events  event_id, event_type, ad_id, event_time_ms, user_id, store_id
#   expected_orders  order_id, user_id, store_id, order_time_ms, amount_micros,
#                    currency, attribution, ad_id, campaign_id, advertiser_id,
#                    touch_event_id, touch_time_ms, scenario, duplicates
# Sorting a .all file numerically by its first field (stable) gives the
# order of the stream; the columns after the key (events) or after the kind
# (orders) are the lines adproduce --input takes.  The kind of an order
# message is valid (the first occurrence of its order id), dup (a later
# message with that id: an identical re-send or one with another amount,
# which must not count) or dead:REASON (invalid: the dead letter's reason).
function rnd(lo, hi) { return lo + int(rand() * (hi - lo + 1)) }
function pick(list,    a, n) { n = split(list, a, " "); return a[rnd(1, n)] }
function i0(x) { return sprintf("%.0f", x) }
function two(x) { return sprintf("%02d", x) }
# ISO-8601 text of epoch milliseconds ms, shifted to the UTC offset of
# off_min minutes (0: "Z")
function iso(ms, off_min,    t, days, rem, z, era, doe, yoe, y, doy, mp, d, m, s) {
	t = ms + off_min * 60000
	days = int(t / 86400000)
	rem = t - days * 86400000
	z = days + 719468
	era = int(z / 146097)
	doe = z - era * 146097
	yoe = int((doe - int(doe / 1460) + int(doe / 36524) - int(doe / 146096)) / 365)
	y = yoe + era * 400
	doy = doe - (365 * yoe + int(yoe / 4) - int(yoe / 100))
	mp = int((5 * doy + 2) / 153)
	d = doy - int((153 * mp + 2) / 5) + 1
	m = mp < 10 ? mp + 3 : mp - 9
	if (m <= 2)
		y++
	s = sprintf("%04d-%s-%sT%s:%s:%s.%03d", y, two(m), two(d), two(int(rem / 3600000)),
				two(int(rem / 60000) % 60), two(int(rem / 1000) % 60), rem % 1000)
	if (off_min == 0)
		return s "Z"
	return s sprintf("%s%s:%s", off_min < 0 ? "-" : "+", two(int((off_min < 0 ? -off_min : off_min) / 60)),
					 two((off_min < 0 ? -off_min : off_min) % 60))
}
# a time field's JSON value, in one of the accepted forms
function jtime(ms,    k) {
	k = rnd(0, 3)
	if (k == 0) return i0(ms)
	if (k == 1) return "\"" iso(ms, 0) "\""
	if (k == 2) return "\"" iso(ms, pick("330 -240 60 -570")) "\""
	return "\"" i0(ms) "\""
}
function campaign(ad) { return "c-" int(ad / 5) }
function advertiser(ad) { return "adv-" int(ad / 20) }

# One ad event; returns its id (the winner of a scenario is remembered by it).
function ev(type, ad, t, user, store,    id, msg, p, key) {
	id = "e-" (++nev)
	msg = "{\"event_id\":\"" id "\",\"event_type\":\"" type "\",\"ad_id\":\"ad-" ad \
		"\",\"event_time\":" jtime(t) ",\"user_id\":\"" user "\",\"campaign_id\":\"" \
		campaign(ad) "\",\"advertiser_id\":\"" advertiser(ad) "\""
	if (store != "")
		msg = msg ",\"store_id\":\"" store "\""
	msg = msg ",\"cost\":" (type == "click" ? "0.25" : "0.001") "}"
	p = rnd(0, event_parts - 1)
	key = nev * 10
	printf "%d\t%d\t0\t%s\n", key, p, msg > (dir "/events.all")
	printf "%s\t%s\t%s\t%s\t%s\t%s\n", id, type, "ad-" ad, i0(t), user,
		store == "" ? "\\N" : store > (dir "/expected_events")
	if (rand() < 0.05)	# an identical re-send, a little later
		printf "%d\t%d\t0\t%s\n", key + rnd(1, 500) * 10 + 5, p, msg > (dir "/events.all")
	ev_ad[id] = ad
	ev_t[id] = t
	ev_type[id] = type
	return id
}

# The JSON text of an order; bad names one way of making it invalid.
function order_json(id, user, store, t, amount, currency, bad,    s, k) {
	k = rnd(0, 2)
	if (id ~ /^[0-9]+$/)
		s = (k == 1 ? "{\"orderId\":" : "{\"order_id\":") id
	else
		s = (k == 1 ? "{\"orderId\":\"" : "{\"order_id\":\"") id "\""
	if (bad == "duplicate_field")
		s = s ",\"orderId\":\"" id "\""
	if (bad == "wrong_type_user")
		s = s ",\"user_id\":{\"id\":\"" user "\"}"
	else
		s = s (k == 1 ? ",\"userId\":\"" : ",\"user_id\":\"") user "\""
	s = s (k == 0 ? ",\"store_id\":\"" : k == 1 ? ",\"storeId\":\"" : ",\"store\":\"") store "\""
	s = s (k == 2 ? ",\"timestamp\":" : k == 1 ? ",\"orderTime\":" : ",\"order_time\":") jtime(t)
	s = s ",\"amount\":" amount
	if (bad != "missing_field")
		s = s ",\"currency\":\"" currency "\""
	if (rand() < 0.3)
		s = s ",\"items\":[{\"sku\":\"sku-" rnd(1, 99) "\",\"qty\":" rnd(1, 3) "}]"
	return s "}"
}

# An order message: kind valid, dup or dead:REASON, at sort key key.
function order_msg(key, kind, p, msg) {
	printf "%s\t%s\t%d\t0\t%s\n", key, kind, p, msg > (dir "/orders.all")
}

# A valid order of scenario sc at time t attributed to event touch ("" for
# none); emits it (and maybe duplicates and invalid messages with its id).
function order(sc, user, store, t, touch,    id, msg, k, a, c, amount, micros, cur, p, key, ndup, attr) {
	norder++
	k = rnd(0, 2)
	id = k == 0 ? 9000000 + norder : "o-" norder
	a = rnd(0, 2500)
	if (rand() < 0.1) {
		c = rnd(0, 999999)
		amount = a "." sprintf("%06d", c)
		micros = a * 1000000 + c
	} else {
		c = rnd(0, 99)
		amount = c == 0 ? a : a "." sprintf("%02d", c)
		micros = a * 1000000 + c * 10000
	}
	if (rand() < 0.2)
		amount = "\"" amount "\""
	cur = pick("USD EUR GBP usd Eur JPY")
	p = rnd(0, order_parts - 1)
	key = norder * 100
	if (rand() < 0.03)	# an invalid message with its id before it: no claim on the id
		order_msg(key - 50, "dead:invalid_value", p,
				  order_json(id, user, store, t, amount, "US", ""))
	msg = order_json(id, user, store, t, amount, cur, "")
	order_msg(key, "valid", p, msg)
	ndup = 0
	if (rand() < 0.12) {	# an identical re-send: soon (still pending) or much later (decided)
		ndup++
		order_msg(key + (rand() < 0.5 ? rnd(1, 20) : rnd(500, 3000)) * 100 + 10, "dup", p, msg)
	}
	if (rand() < 0.05) {	# a re-send with another amount and time: the first one counts
		ndup++
		order_msg(key + rnd(1, 3000) * 100 + 20, "dup", p,
				  order_json(id, user, store, t - 60000, a + 1, cur, ""))
	}
	if (touch == "")
		attr = "none"
	else
		attr = ev_type[touch] == "click" ? "click" : "view"
	printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", id, user, store, i0(t),
		i0(micros), toupper(cur), attr,
		touch == "" ? "\\N" : "ad-" ev_ad[touch],
		touch == "" ? "\\N" : campaign(ev_ad[touch]),
		touch == "" ? "\\N" : advertiser(ev_ad[touch]),
		touch == "" ? "\\N" : touch,
		touch == "" ? "\\N" : i0(ev_t[touch]), sc, ndup > (dir "/expected_orders")
}

# An invalid order message (a dead letter), of each kind in turn.
function bad_order(    kinds, n, kind, t, reason, msg, id, p) {
	n = split("missing_field invalid_currency negative_amount wrong_type_amount malformed_json too_old too_far_in_future duplicate_field wrong_type_user too_precise empty_id", kinds, " ")
	kind = kinds[(nbad++ % n) + 1]
	t = now_ms - rnd(30, 120) * 60000
	id = "bad-" nbad
	reason = kind
	if (kind == "missing_field")
		msg = order_json(id, "u-bad", "s-1", t, "10.00", "USD", "missing_field")
	else if (kind == "invalid_currency") {
		reason = "invalid_value"
		msg = order_json(id, "u-bad", "s-1", t, "10.00", "US", "")
	} else if (kind == "negative_amount") {
		reason = "invalid_value"
		msg = order_json(id, "u-bad", "s-1", t, "-5", "USD", "")
	} else if (kind == "wrong_type_amount") {
		reason = "wrong_type"
		msg = order_json(id, "u-bad", "s-1", t, "true", "USD", "")
	} else if (kind == "malformed_json") {
		msg = "{\"order_id\":\"" id "\",\"user_id\":\"u-bad\",\"amount\":1"
	} else if (kind == "too_old")
		msg = order_json(id, "u-bad", "s-1", now_ms - 3 * 86400000, "10.00", "USD", "")
	else if (kind == "too_far_in_future")
		msg = order_json(id, "u-bad", "s-1", now_ms + 2 * 3600000, "10.00", "USD", "")
	else if (kind == "duplicate_field")
		msg = order_json(id, "u-bad", "s-1", t, "10.00", "USD", "duplicate_field")
	else if (kind == "wrong_type_user") {
		reason = "wrong_type"
		msg = order_json(id, "u-bad", "s-1", t, "10.00", "USD", "wrong_type_user")
	} else if (kind == "too_precise") {
		reason = "invalid_value"
		msg = order_json(id, "u-bad", "s-1", t, "1.1234567", "USD", "")
	} else {
		reason = "invalid_value"
		msg = order_json("", "u-bad", "s-1", t, "10.00", "USD", "")
	}
	p = rnd(0, order_parts - 1)
	order_msg(norder * 100 + 30, "dead:" reason, p, msg)
}

BEGIN {
	srand(seed)
	H = 3600000
	D = 24 * H
	MIN = 60000
	for (sc = 0; sc < scenarios; sc++) {
		u = "u-" sc
		st = rnd(0, 19)
		s = "s-" st
		other = "s-" ((st + rnd(1, 19)) % 20)
		x = "x-" sc
		T = now_ms - rnd(30 * MIN, 2 * H)
		T2 = T + rnd(10 * MIN, 25 * MIN)	# a repeat customer's second order
		r = rand()
		# distractors any scenario may get: recent events that would win if
		# the store, the user, or the order time were ignored
		if (rand() < 0.7) ev("click", rnd(0, 59), T - rnd(1000, 6 * D), u, other)
		if (rand() < 0.5) ev("click", rnd(0, 59), T - rnd(1000, 6 * D), x, s)
		if (rand() < 0.3) ev("click", rnd(0, 59), T - rnd(1000, 6 * D), u, "")
		if (rand() < 0.5)
			ev(pick("click impression"), rnd(0, 59), (r < 0.8 ? T : T2) + rnd(1000, 4 * MIN), u, s)
		if (r < 0.35) {
			# the last click within 7 days wins, even over a later impression
			r1 = rnd(MIN, 7 * D - 3 * H)
			win = ev("click", rnd(0, 59), T - r1, u, s)
			if (rand() < 0.6) ev("click", rnd(0, 59), T - r1 - rnd(1000, D), u, s)
			if (rand() < 0.6) ev("impression", rnd(0, 59), T - rnd(500, (r1 < 21 * H ? r1 : 21 * H) - 500), u, s)
			if (rand() < 0.4) ev("click", rnd(0, 59), T - 7 * D - rnd(2 * H, 2 * D), u, s)
			order(sc, u, s, T, win)
		} else if (r < 0.6) {
			# no click within 7 days: the last impression within a day wins
			if (rand() < 0.6) ev("click", rnd(0, 59), T - 7 * D - rnd(2 * H, 2 * D), u, s)
			r2 = rnd(1000, 21 * H)
			win = ev("impression", rnd(0, 59), T - r2, u, s)
			if (rand() < 0.6) ev("impression", rnd(0, 59), T - r2 - rnd(1000, 2 * H), u, s)
			if (rand() < 0.5) ev("impression", rnd(0, 59), T - D - rnd(2 * H, 5 * D), u, s)
			order(sc, u, s, T, win)
		} else if (r < 0.8) {
			# only events outside their windows (or none at all): unattributed
			if (rand() < 0.8) ev("click", rnd(0, 59), T - 7 * D - rnd(2 * H, 2 * D), u, s)
			if (rand() < 0.8) ev("impression", rnd(0, 59), T - D - rnd(2 * H, 5 * D), u, s)
			order(sc, u, s, T, "")
		} else {
			# a repeat customer: the second order goes to a click made
			# between the two orders, the first to the click before it
			k1 = ev("click", rnd(0, 59), T - rnd(1000, 2 * D), u, s)
			k2 = ev("click", rnd(0, 59), T + rnd(1000, T2 - T - 1000), u, s)
			if (rand() < 0.5) ev("impression", rnd(0, 59), T2 - rnd(1, 999), u, s)
			order(sc, u, s, T, k1)
			order(sc, u, s, T2, k2)
		}
		if (rand() < 0.04)
			bad_order()
	}
}
