"""``AddressPolicy``: which hosts and addresses a provider's session may connect to.

An upstream names addresses to us (a redirect's ``Location``, a relay task's ``data.output``)
and a proxy that fetched whatever it was told would read the operator's internal network for
anyone who can run a render. The rules, one policy per provider:

- API calls go only to the provider's own host (its ``base_url``);
- content may come from the own host or a host the operator lists for the provider
  (``content_hosts``; ``*.example.com`` takes every name under example.com);
- no connection goes to a loopback, link-local, private or otherwise non-global address, unless
  the provider's own host is one (a simulator or a gateway on the operator's own network) or
  the operator allows it (``allow_private_addresses``).

Host names are checked against the addresses they resolve to at connect time, by the session's
resolver (``GuardedResolver``), so a name that resolves to a public address when checked and a
private one when used does not get through. IP literals skip the resolver and are checked in
``AddressPolicy.check``.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL


class ForbiddenAddress(OSError):
    """A connection the address policy does not allow; nothing was sent."""


def is_public(address: str) -> bool:
    """Whether ``address`` (an IP literal) is a global unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _name(host: str | None) -> str:
    return (host or "").lower().rstrip(".")


class AddressPolicy:
    """The hosts and addresses one provider may reach; see the module docstring."""

    __slots__ = ("_allow_private", "_own_private", "_patterns", "origin", "own_host")

    def __init__(
        self, base_url: str, content_hosts: tuple[str, ...] = (), allow_private: bool = False
    ) -> None:
        root = URL(base_url)
        self.own_host = _name(root.host)
        self.origin = root.origin() if root.host else root
        self._patterns = tuple(_name(h) for h in content_hosts)
        self._allow_private = allow_private
        # Whether the own host is a non-global address: known now for a literal, else set when
        # the resolver first resolves it.
        self._own_private: bool | None = (
            not is_public(self.own_host) if _is_literal(self.own_host) else None
        )

    def host_allowed(self, host: str | None) -> bool:
        name = _name(host)
        if not name:
            return False
        if name == self.own_host:
            return True
        return any(
            name == p or (p.startswith("*.") and name.endswith(p[1:])) for p in self._patterns
        )

    def own_known(self) -> bool:
        """Whether it is known yet if the own host is a non-global address."""
        return self._own_private is not None

    def private_allowed(self) -> bool:
        return self._allow_private or bool(self._own_private)

    def check(self, url: URL) -> None:
        """Raise ``ForbiddenAddress`` unless content may be fetched from ``url``."""
        if url.scheme not in ("http", "https"):
            raise ForbiddenAddress(f"scheme {url.scheme!r} is not fetched")
        if not self.host_allowed(url.host):
            raise ForbiddenAddress("host is neither the provider's own nor in its content_hosts")
        host = _name(url.host)
        private = host != self.own_host and _is_literal(host) and not is_public(host)
        if private and not self.private_allowed():
            raise ForbiddenAddress("a non-public address, and private addresses are off")

    def judge(self, host: str, addresses: list[str]) -> None:
        """At connect time: the addresses ``host`` resolved to (the resolver's check)."""
        name = _name(host)
        private = any(not is_public(a) for a in addresses)
        if name == self.own_host:
            self._own_private = bool(self._own_private) or private
            return
        if not self.host_allowed(name):
            raise ForbiddenAddress("host is neither the provider's own nor in its content_hosts")
        if private and not self.private_allowed():
            raise ForbiddenAddress("the host resolves to a non-public address")


class GuardedResolver(AbstractResolver):
    """The default resolver, with every answer judged by an ``AddressPolicy``."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if not self._policy.host_allowed(host):  # never even looked up
            raise ForbiddenAddress("host is neither the provider's own nor in its content_hosts")
        if _name(host) != self._policy.own_host and not self._policy.own_known():
            # The rule for other hosts depends on the own host's addresses: learn them first.
            own = await self._inner.resolve(self._policy.own_host, 0, family)
            self._policy.judge(self._policy.own_host, [r["host"] for r in own])
        found = await self._inner.resolve(host, port, family)
        self._policy.judge(host, [r["host"] for r in found])
        return found

    async def close(self) -> None:
        await self._inner.close()
