"""The app's cleanup context: what it opens for the engine and the handlers, and closes again."""

from __future__ import annotations

from remediator.aws.clients import AwsClients, aws_clients
from tests.support.daemon import DaemonFactory


async def test_the_daemon_gives_aws_actions_one_open_client_set(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    clients = aws_clients(daemon.deps.actions)  # raised LookupError before: no action could reach AWS
    assert isinstance(clients, AwsClients)
    assert clients.settings is daemon.deps.settings.aws
    await daemon.client.close()
    await daemon.admin.close()
    assert clients._stack is None  # closed with the admin listener's app, which owns them
