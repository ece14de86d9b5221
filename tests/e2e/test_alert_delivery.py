"""Issue 16: alerts reach a person. The daemon delivers its alerts to a webhook and a Telegram chat
(loopback receivers), each once with its trace id; `tradingd liveness`, run from outside as the systemd
timer runs it, alerts when the daemon is killed (an alert from inside cannot report its own death),
once per incident. Neither the webhook's path token nor the bot token is ever logged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.alert_receivers import serving
from tests.e2e.daemon_harness import (
    PAIRS,
    TRADINGD,
    Daemon,
    cut_files,
    daemon,
    decisions,
    query,
    replay_simulator,
    write_config,
)

pytestmark = pytest.mark.timeout(900)
BOT_TOKEN = "987654:bot-token-marker-e2e"


def liveness(d: Daemon) -> tuple[int, dict[str, object]]:
    """The real `tradingd liveness`, with the daemon's configuration and environment."""
    assert TRADINGD is not None
    done = subprocess.run(
        [TRADINGD, "--config", str(d.config), "liveness"], env=d.env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_alerts_reach_a_webhook_and_telegram_and_liveness_reports_a_killed_daemon(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 2000)
    with serving("webhook") as hook, serving("telegram") as chat:
        env = {
            "TRADINGD_ALERT_WEBHOOK_URL": hook.url,
            "TRADINGD_ALERT_TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TRADINGD_ALERT_TELEGRAM_CHAT_ID": "-100200300",
        }
        config = write_config(tmp_path, extra=f'[alerts]\ntelegram_api_url = "{chat.url}"\n')
        with replay_simulator(files) as urls, daemon(config, urls, postgres_url, tmp_path, extra_env=env) as d:
            d.start()
            d.wait_ready()
            d.wait_until(lambda: all(decisions(postgres_url, p) >= 2 for p in PAIRS), 180, "decisions")
            code, first = liveness(d)
            assert (code, first["verdict"], first["alerted"]) == (0, "alive", []), first
            # an actor dies: its restart's alert reaches both channels, with the trace id of its row
            policy = d.ctl("status")["pairs"]["BTC-USDT"]["actors"]["policy"]["pid"]
            os.kill(policy, signal.SIGKILL)
            d.wait_until(lambda: any(m["kind"] == "actor_restarted" for m in hook.messages()), 180, "the webhook")
            d.wait_until(lambda: any("actor_restarted" in m["text"] for m in chat.messages()), 60, "the chat")
            sent = next(m for m in hook.messages() if m["kind"] == "actor_restarted")
            assert sent["pair"] == "BTC-USDT"
            assert sent["severity"] == "warning"
            row = query(postgres_url, "SELECT trace_id, uid::text FROM alerts WHERE kind = 'actor_restarted'")[0]
            assert (sent["trace_id"], sent["uid"]) == (row["trace_id"], row["uid"])
            text = next(m["text"] for m in chat.messages() if "actor_restarted" in m["text"])
            assert f"trace {row['trace_id']}" in text
            d.wait_until(
                lambda: (
                    query(postgres_url, "SELECT delivery FROM alerts WHERE uid = $1::uuid", row["uid"])[0][0]
                    == "delivered"
                ),
                60,
                "the row marked delivered",
            )
            listed = next(a for a in d.ctl("alerts")["alerts"] if a["kind"] == "actor_restarted")
            assert listed["delivery"] == "delivered (telegram, webhook)"
            # the daemon is killed with everything under it: only the check from outside can say so
            d.kill_everything()
            code, verdict = liveness(d)
            assert (code, verdict["verdict"], verdict["alerted"]) == (1, "dead", ["webhook", "telegram"])
            dead = [m for m in hook.messages() if m["kind"] == "daemon_dead"]
            assert len(dead) == 1
            assert dead[0]["severity"] == "critical"
            assert any("daemon_dead" in m["text"] for m in chat.messages())
            code, again = liveness(d)
            assert (code, again["verdict"], again["alerted"]) == (1, "dead", []), "one alert per incident"
            assert len([m for m in hook.messages() if m["kind"] == "daemon_dead"]) == 1
            log_text = d.log_path.read_text()
            assert "alert_delivered" in log_text
            assert BOT_TOKEN not in log_text
            assert "secret-path-token" not in log_text
            assert all("secret-path-token" in path for path in hook.paths)
            assert set(chat.paths) == {f"/bot{BOT_TOKEN}/sendMessage"}
