"""Alerts: the few conditions an operator must hear about, where the operator looks.

- daemon/alerts/rules.py: which events become alerts, the rate limit, the log line;
- daemon/alerts/delivery.py: per-channel queues, retries and backoff;
- daemon/alerts/webhook.py, smtp.py, telegram.py: the channels (Slack-compatible
  webhook, e-mail with STARTTLS, Telegram's Bot API);
- daemon/alerts/secrets.py: their secrets, from the environment or systemd credentials;
- daemon/alerts/service.py: `Alerts`, the rules wired to the configured channels.
"""

from daemon.alerts.rules import Alert, AlertRules
from daemon.alerts.service import Alerts, build_channels
from daemon.alerts.webhook import load_webhook_url

__all__ = ["Alert", "AlertRules", "Alerts", "build_channels", "load_webhook_url"]
