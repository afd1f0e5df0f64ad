"""The figures of a load run, from Locust's statistics: rate-limited requests kept out of the latency, and the
run failing on an unexpected answer or on analytics that disagree with the clients."""

from __future__ import annotations

from locust.stats import RequestStats

from load import report

SETUP = {"duration_seconds": 10.0, "users": 4}
SAW = {"cards_issued": 3, "approved": 2, "declined": 1}


def _stats() -> RequestStats:
    stats = RequestStats()
    for ms in (10, 20, 30, 40):
        stats.log_request("POST", "/charges", ms, 100)
    for _ in range(6):  # refused quickly by the limiter: must not make the service look faster
        stats.log_request("GET", "/cards" + report.RATE_LIMITED, 1, 50)
    return stats


def test_latency_is_that_of_the_requests_served_and_429s_are_counted_apart() -> None:
    stats = _stats()
    stats.total.last_request_timestamp = stats.total.start_time + 2  # a run of 2 s
    result = report.build(stats, {"polling merchant": 6}, SAW, SAW, SETUP)
    assert result["requests"] == 10 and result["failures"] == 0
    assert result["requests_per_second"] == 5 and result["served_requests_per_second"] == 2
    charges = stats.get("/charges", "POST")
    assert result["p50_ms"] == charges.get_response_time_percentile(0.5) > stats.total.median_response_time
    assert result["p99_ms"] == 40  # over the four charges only
    assert result["rate_limited"] == {"total": 6, "by_kind": {"polling merchant": 6}}
    assert [e["name"] for e in result["endpoints"]] == ["/cards (429)", "/charges"]
    assert result["consistency"]["agree"] and result["ok"]
    text = report.render(result)
    assert "429 rate limited: 6 (polling merchant 6)" in text and "they agree" in text


def test_an_unexpected_answer_fails_the_run_and_is_shown() -> None:
    stats = _stats()
    stats.log_error("POST", "/charges", "expected 201, got 500")
    stats.log_request("POST", "/charges", 5, 10)
    result = report.build(stats, {}, SAW, SAW, SETUP)
    assert result["failures"] == 1 and not result["ok"]
    assert result["failure_samples"][0]["error"] == "expected 201, got 500"
    assert "POST /charges (1): expected 201, got 500" in report.render(result)


def test_what_the_clients_never_saw_counts_as_zero() -> None:
    none = {"cards_issued": 0, "approved": 0, "declined": 0}
    result = report.build(_stats(), {}, {}, none, SETUP)
    assert result["consistency"]["clients_saw"] == none and result["consistency"]["agree"]


def test_analytics_that_count_other_than_the_clients_fail_the_run() -> None:
    behind = {**SAW, "approved": 1}
    result = report.build(_stats(), {}, SAW, behind, SETUP)
    assert not result["consistency"]["agree"] and not result["ok"]
    assert "THEY DISAGREE" in report.render(result)


def test_the_analytics_summary_is_read_for_the_compared_counts() -> None:
    summary = {"cards_issued": 3, "charges": {"approved": 2, "declined": 1}, "volume": {"USD": 5}}
    assert report.analytics_counts(summary) == SAW


def test_an_error_in_a_users_code_fails_the_run_and_is_shown() -> None:
    errors = [{"error": "KeyError('card_id')", "occurrences": 2}]
    result = report.build(_stats(), {}, SAW, SAW, SETUP, errors)
    assert result["task_errors"] == errors and not result["ok"]
    assert "error in a user's task (2): KeyError('card_id')" in report.render(result)
