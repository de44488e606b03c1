"""amqp against a real RabbitMQ node (Connection.Start, a whole login, a bad password, a missing vhost)
and against a port that accepts TCP and says nothing."""

from __future__ import annotations

import asyncio

import pytest

from pacslb.health import AMQPProbe, Target, probe_for
from pacslb.model.config import AMQPCheck
from support.net import LOOPBACK, free_port

pytestmark = [pytest.mark.engine, pytest.mark.slow]


async def test_connection_start_is_up(rabbitmq):
    probe = probe_for(AMQPCheck(type="amqp", timeout="4s"))
    result = await probe.probe(Target(LOOPBACK, rabbitmq.port))
    assert result.up and result.reason.startswith("AMQP 0-9-1 Connection.Start from RabbitMQ "), result


async def test_a_whole_login_as_guest_is_up(rabbitmq):
    probe = probe_for(AMQPCheck(type="amqp", username="guest", password="guest", timeout="4s"))
    result = await probe.probe(Target(LOOPBACK, rabbitmq.port))
    assert result.up and result.reason.startswith("AMQP login to vhost '/' on RabbitMQ"), result


async def test_a_wrong_password_is_down_with_the_brokers_reason(rabbitmq):
    result = await AMQPProbe(timeout=4, username="guest", password="not-the-password").probe(Target(LOOPBACK, rabbitmq.port))
    assert not result.up
    assert result.reason.startswith("the server closed the connection during tune: 403 ACCESS_REFUSED"), result


async def test_a_missing_vhost_is_down(rabbitmq):
    probe = AMQPProbe(timeout=4, virtual_host="/no-such-vhost", username="guest", password="guest")
    result = await probe.probe(Target(LOOPBACK, rabbitmq.port))
    assert not result.up and "530 NOT_ALLOWED" in result.reason and "during open" in result.reason, result


async def test_a_port_that_accepts_and_says_nothing_is_down():
    silent = await asyncio.start_server(lambda r, w: None, LOOPBACK, 0)
    async with silent:
        port = silent.sockets[0].getsockname()[1]
        result = await AMQPProbe(timeout=0.5).probe(Target(LOOPBACK, port))
    assert not result.up and result.reason == "TCP accepted but no AMQP greeting within 0.5s"
    result = await AMQPProbe(timeout=2).probe(Target(LOOPBACK, free_port()))
    assert not result.up and result.reason.startswith("connect failed")


async def test_a_server_that_is_not_amqp_is_down():
    async def http(reader, writer):
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, LOOPBACK, 0)
    async with server:
        result = await AMQPProbe(timeout=2).probe(Target(LOOPBACK, server.sockets[0].getsockname()[1]))
    assert not result.up and result.reason.startswith("not AMQP 0-9-1"), result


async def test_a_configurations_secret_reaches_the_probe_through_a_placeholder_round_trip(rabbitmq):
    """The password is a secret of the model (shown as the placeholder): what the API answered, sent back,
    resolves to the stored value, and the probe built from it logs in to RabbitMQ with the real password."""
    from pacslb.model import load_text
    from pacslb.model.secrets import resolve, stored_form
    from pacslb.model.types import SECRET_PLACEHOLDER

    text = f"""version: 1
virtual_services:
  - name: RMQ
    mode: layer7-tcp
    listen: [{{address: 127.0.0.1, port: 5672}}]
    health_check: {{type: amqp, username: guest, password: guest, timeout: 4s}}
    real_servers: [{{name: mq1, address: {LOOPBACK}, port: {rabbitmq.port}}}]
"""
    running = load_text(text).config
    sent_back = load_text(running.model_dump_json()).config  # what GET /config answered: the placeholder
    assert sent_back.virtual_services[0].health_check.password.reveal() == SECRET_PLACEHOLDER
    resolved, problems = resolve(sent_back, stored_form(running))
    assert problems == []
    result = await probe_for(resolved.virtual_services[0].health_check).probe(Target(LOOPBACK, rabbitmq.port))
    assert result.up and result.reason.startswith("AMQP login to vhost '/' on RabbitMQ"), result
    # the placeholder itself is no password: the broker refuses it
    refused = await probe_for(sent_back.virtual_services[0].health_check).probe(Target(LOOPBACK, rabbitmq.port))
    assert not refused.up and "403 ACCESS_REFUSED" in refused.reason, refused
