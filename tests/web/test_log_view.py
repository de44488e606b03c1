"""The log page: each HAProxy message once, a reload's burst folded with its count, times where HAProxy writes them.

The lines are HAProxy 2.6's own output, recorded from `haproxy -W` with `log stdout format raw` (as pacslb renders it)
and stdout and stderr appended to one file, across one reload.
"""

from __future__ import annotations

from pacslb.web.logview import MAX_NAMES_SHOWN, copy_times, fold, line_time

RELOAD = """\
[NOTICE]   (18115) : New worker (18129) forked
[NOTICE]   (18115) : Loading success.
[WARNING]  (18129) : Server b/s1 is DOWN, reason: Layer4 connection problem, info: "Connection refused", check duration: 0ms.
Server b/s1 is DOWN, reason: Layer4 connection problem, info: "Connection refused", check duration: 0ms.
[ALERT]    (18129) : backend 'b' has no server available!
backend b has no server available!
[NOTICE]   (18115) : Reloading HAProxy
{stopped}[NOTICE]   (18115) : New worker (18288) forked
127.0.0.1:39424 [07/Dec/2026:09:19:14.822] f f/<NOSRV> 0/-1/-1/-1/0 200 73 - - LR-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"
"""


def reload_log(proxies: int) -> list[str]:
    stopped = "".join(
        f"[WARNING]  (18129) : Proxy p{i} stopped (cumulated conns: FE: 0, BE: {i}).\nProxy p{i} stopped (cumulated conns: FE: 0, BE: {i}).\n"
        for i in range(proxies)
    )
    return RELOAD.format(stopped=stopped).splitlines()


def test_each_message_once_and_the_reload_burst_folded():
    raw = reload_log(41)  # True PACS: 6 frontends and 35 backends
    assert len(raw) == 9 + 2 * 41
    shown = fold(raw)
    texts = [line.text for line in shown]
    assert len(shown) == 8, texts
    assert sum(1 for t in texts if "Server b/s1 is DOWN" in t) == 1 and texts[2].startswith("[WARNING]")
    assert sum(1 for t in texts if "has no server available" in t) == 1 and shown[3].css_class == "log-alert"
    burst = shown[5]
    assert burst.count == 41 and burst.level == "WARNING" and burst.css_class == "log-warn"
    assert burst.text.startswith("[WARNING]  (18129) : 41 proxies stopped (the old worker after a reload): p0, p1")
    assert f"p{MAX_NAMES_SHOWN - 1}, …" in burst.text and f"p{MAX_NAMES_SHOWN}," not in burst.text


def test_traffic_lines_show_their_time_and_messages_do_not_invent_one():
    shown = fold(reload_log(2))
    assert shown[-1].time == "2026-12-07 09:19:14.822"
    assert all(line.time is None for line in shown if line.level)
    assert line_time("x [31/Feb/2026:10:00:00] y") is None and line_time("no date") is None


def test_repeated_lines_fold_with_a_count_but_different_ones_stay():
    shown = fold(["same", "same", "same", "other", "same"])
    assert [(line.text, line.count) for line in shown] == [("same", 3), ("other", 1), ("same", 1)]


def test_a_bare_line_that_is_no_twin_stays():
    shown = fold(["[WARNING]  (1) : a thing", "another thing"])
    assert [line.text for line in shown] == ["[WARNING]  (1) : a thing", "another thing"]


def test_twins_written_out_of_step_around_a_reload_are_dropped_too():
    """The old and the new worker write at once: a bare twin may come lines after its tagged copy, or before it (a CI
    run showed a lone 'Proxy ... stopped' line on the log page); each is still shown once, the burst still folded."""
    tagged = [f"[WARNING]  (18129) : Proxy p{i} stopped (cumulated conns: FE: 0, BE: {i})." for i in range(4)]
    bare = [line.split(" : ", 1)[1] for line in tagged]
    lines = [bare[0], tagged[0], tagged[1], "[NOTICE]   (18115) : New worker (18288) forked", bare[1],
             tagged[2], bare[2], tagged[3], bare[3]]  # fmt: skip
    texts = [line.text for line in fold(lines)]
    assert not [t for t in texts if t.startswith("Proxy ")], texts
    assert sum(line.count for line in fold(lines)) == 5  # four proxies and the notice, each once
    assert fold(["a thing", "[WARNING]  (1) : a thing"])[0].text == "[WARNING]  (1) : a thing"  # twin before: one line


def test_the_log_page_renders_folded_lines(web, web_app):
    web_app.controller.paths.haproxy_log.write_text("\n".join(reload_log(41)) + "\n")
    page = web("viewer").get("/log?lines=200").text
    assert page.count("Server b/s1 is DOWN") == 1
    assert "41 proxies stopped" in page and "×41" in page
    assert '<span class="log-time">2026-12-07 09:19:14.822</span>' in page


def test_a_message_about_many_quoted_names_folds_into_one():
    lines = [f"[WARNING]  (22048) : config : server-state partially applied for server 'WFC_{i}_80/wfc1', agent checks are"
             " not enabled on this server" for i in range(26)] + ["[NOTICE]   (22048) : New worker (25123) forked"]  # fmt: skip
    shown = fold(lines)
    assert len(shown) == 2 and shown[0].count == 26 and shown[0].css_class == "log-warn"
    assert shown[0].text.startswith("[WARNING]  (22048) : config : server-state partially applied for server '…', agent")
    assert "(26 times, for WFC_0_80/wfc1, WFC_1_80/wfc1," in shown[0].text
    one = fold(lines[:1])
    assert one[0].text == lines[0] and one[0].count == 1  # a single one stays as HAProxy wrote it


CONTROLLER_LOG = """\
2026-12-07 09:19:10,001 INFO    pacslb.controller: revision 2 applied
2026-12-07 09:19:11,250 WARNING pacslb.haproxy: (18129) Server b/s1 is DOWN, reason: Layer4 connection problem, info: "Connection refused", check duration: 0ms.
2026-12-07 09:19:11,251 ERROR   pacslb.haproxy: (18129) backend 'b' has no server available!
2026-12-07 09:19:12,500 INFO    pacslb.haproxy: (18115) Reloading HAProxy
2026-12-07 09:19:12,502 WARNING pacslb.haproxy: (18129) Proxy p0 stopped (cumulated conns: FE: 0, BE: 0).
"""


def test_haproxys_own_messages_get_the_time_the_controller_read_them():
    copies = copy_times(CONTROLLER_LOG.splitlines())
    shown = fold(reload_log(2), copies)
    by_text = {line.text.split(" : ", 1)[-1][:24]: line for line in shown}
    down = by_text["Server b/s1 is DOWN, rea"]
    assert (down.time, down.copied) == ("2026-12-07 09:19:11.250", True)
    assert by_text["backend 'b' has no serve"].time == "2026-12-07 09:19:11.251"
    assert by_text["Reloading HAProxy"].time == "2026-12-07 09:19:12.500"
    assert by_text["2 proxies stopped (the o"].time == "2026-12-07 09:19:12.502"  # the first of the run
    assert by_text["New worker (18129) forke"].time is None  # not in the controller's tail: no invented time
    traffic = shown[-1]
    assert traffic.time == "2026-12-07 09:19:14.822" and not traffic.copied


def test_a_repeated_message_takes_its_copies_newest_last():
    lines = ["[WARNING]  (7) : flap", "[NOTICE]   (7) : between", "[WARNING]  (7) : flap"]
    copies = copy_times(["2026-01-01 00:00:01,000 WARNING pacslb.haproxy: (7) flap",
                         "2026-01-01 00:00:02,000 INFO    pacslb.haproxy: (7) between",
                         "2026-01-01 00:00:03,000 WARNING pacslb.haproxy: (7) flap"])  # fmt: skip
    assert [line.time for line in fold(lines, copies)] == ["2026-01-01 00:00:01.000", "2026-01-01 00:00:02.000",
                                                           "2026-01-01 00:00:03.000"]  # fmt: skip
    assert [line.time for line in fold(lines, copy_times([]))] == [None, None, None]


def test_the_log_page_reads_the_times_from_the_controller_log(web, web_app):
    paths = web_app.controller.paths
    paths.haproxy_log.write_text("\n".join(reload_log(2)) + "\n")
    paths.controller_log.write_text(CONTROLLER_LOG)
    page = web("viewer").get("/fragments/log?lines=200").text
    assert '<span class="log-time log-time-read" title="when pacslb read it' in page
    assert ">2026-12-07 09:19:11.250</span> [WARNING]  (18129) : Server b/s1 is DOWN" in page
