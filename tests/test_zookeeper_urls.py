"""zk:// URLs with credentials (Mesos' zk://USER:PASSWORD@HOST:PORT/PATH): parsed into
digest auth and ACLs, and never shown with the password."""
from __future__ import annotations

import pytest

from corral.net.zookeeper import Acl, ZooKeeperUrlError, mask_credentials, parse_zk_url

SECRET = "s3cr@t:pw"


def test_credentials_become_digest_auth_and_acls_and_are_masked_when_shown():
    url = parse_zk_url(f"zk://corral:{SECRET}@10.0.0.1:2181,zk2:2181/mesos/corral")
    assert (url.user, url.password, url.path) == ("corral", SECRET, "/mesos/corral")
    assert url.connect_string == "10.0.0.1:2181,zk2:2181"
    assert url.auth_data() == [("digest", f"corral:{SECRET}")]
    assert str(url) == "zk://corral:****@10.0.0.1:2181,zk2:2181/mesos/corral"
    assert SECRET not in repr(url) and SECRET not in f"{url}"
    readable, private = url.acl(Acl.READABLE), url.acl(Acl.PRIVATE)
    assert [(a.id.scheme, a.perms) for a in private] == [("digest", 31)]
    assert private[0].id.id.startswith("corral:") and SECRET not in private[0].id.id  # a hash, not the password
    assert sorted((a.id.scheme, a.id.id if a.id.scheme == "world" else "", a.perms) for a in readable) == [
        ("digest", "", 31), ("world", "anyone", 1)]


def test_without_credentials_every_znode_is_open():
    url = parse_zk_url("zk://127.0.0.1:2181/corral")
    assert url.auth_data() == [] and url.user == ""
    assert [(a.id.scheme, a.id.id, a.perms) for a in url.acl(Acl.PRIVATE)] == [("world", "anyone", 31)]


@pytest.mark.parametrize("text", [
    f"zk://:{SECRET}@h:1/c", f"zk://u:{SECRET}@h/c", f"zk://u:{SECRET}/x@h:1/c", "zk://u@h:1/c"])
def test_bad_urls_are_named_without_their_password(text):
    with pytest.raises(ZooKeeperUrlError) as refused:
        parse_zk_url(text)
    assert SECRET not in str(refused.value) and "invalid ZooKeeper URL 'zk://" in str(refused.value)


def test_mask_credentials_masks_every_url_in_a_text():
    text = f"--zk zk://corral:{SECRET}@h:2181/c --master zk://h:2181/c zk://other:x/y@h:1/c"
    assert mask_credentials(text) == "--zk zk://corral:****@h:2181/c --master zk://h:2181/c zk://other:****@h:1/c"
