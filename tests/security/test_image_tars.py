"""Hostile image archives (docs/images.md#hardening): an image comes from anywhere, and its
tar is the attacker's. Each is imported into a fresh store (no daemon) and must be refused
with an error that says why, or neutralised (setuid/setgid bits), with nothing written
outside the store and nothing left in its tmp dir or layers after a refusal."""
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import image_util  # noqa: E402
from image_util import TarBuilder  # noqa: E402

from .secsuite import AGENTD


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="agentd-hostile-img-", dir="/var/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_import(work, path, *extra):
    p = subprocess.run([AGENTD, "image", "import", path, "--state-dir", os.path.join(work, "state"),
                        *extra], capture_output=True, timeout=600,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                            "AGENTD_SOCKET": "/nonexistent.sock"})
    return p


def store(work, *parts):
    return os.path.join(work, "state", "images", *parts)


def assert_refused(work, path, why, *extra):
    p = run_import(work, path, *extra)
    assert p.returncode == 125, p
    assert why.encode() in p.stderr, p.stderr
    assert os.listdir(store(work, "tmp")) == [], "a refused import left its work dir"
    assert os.listdir(store(work, "layers")) == [], "a refused import left a layer"
    assert [f for f in os.listdir(store(work, "images")) if f.endswith(".json")] == []
    return p


def oci_with_layer(work, layer, name="h.tar"):
    return image_util.write_oci_tar(os.path.join(work, name), layers=[layer]).path


def outside(work):
    """A path outside the store the archive aims at; must never exist."""
    return os.path.join(work, "outside-" + uuid.uuid4().hex[:8])


def test_path_traversal_and_absolute_names_are_refused(work):
    target = outside(work)
    rel = os.path.relpath(target, store(work, "layers", "x"))
    for name in [rel, "a/../../" + os.path.basename(target), target]:
        t = TarBuilder().dir("a").file(name, b"pwned")
        assert_refused(work, oci_with_layer(work, t.bytes()),
                       "an absolute path or a \"..\" component")
    assert not os.path.lexists(target)


def test_an_absolute_symlink_then_a_file_through_it_is_refused(work):
    target = outside(work)
    os.mkdir(target)
    t = TarBuilder().symlink("etc", target).file("etc/pwned", b"pwned")
    assert_refused(work, oci_with_layer(work, t.bytes()), "a symbolic link (never followed)")
    assert os.listdir(target) == []


def test_a_symlinked_dir_then_a_file_through_it_is_refused(work):
    t = TarBuilder().dir("a").symlink("a/up", "../../../../../../../..").file(
        "a/up/tmp/pwned-" + uuid.uuid4().hex, b"pwned")
    assert_refused(work, oci_with_layer(work, t.bytes()), "a symbolic link (never followed)")


def test_symlinks_are_kept_as_links_with_any_target(work):
    """They resolve in the sandbox's root only; the host never follows them."""
    t = TarBuilder().dir("etc").symlink("etc/shadow-link", "/etc/shadow").symlink(
        "up", "../../..")
    p = run_import(work, oci_with_layer(work, t.bytes()))
    assert p.returncode == 0, p
    layers = os.listdir(store(work, "layers"))
    d = store(work, "layers", [l for l in layers if not l.endswith(".json")][0])
    assert os.readlink(os.path.join(d, "etc/shadow-link")) == "/etc/shadow"
    assert os.readlink(os.path.join(d, "up")) == "../../.."


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_nodes_and_fifos_are_refused(work, kind):
    ti = tarfile.TarInfo("dev/evil")
    ti.type = kind
    ti.devmajor, ti.devminor = 8, 0  # /dev/sda
    ti.mode = 0o666
    t = TarBuilder().dir("dev").raw(ti)
    assert_refused(work, oci_with_layer(work, t.bytes()), "a device node, fifo or socket")


def test_setuid_and_setgid_bits_are_stripped(work):
    t = TarBuilder().dir("bin").file("bin/suid", b"#!/bin/sh\n", mode=0o4755).file(
        "bin/sgid", b"#!/bin/sh\n", mode=0o2755).dir("sgid-dir", mode=0o2775).dir(
        "tmp", mode=0o1777)
    p = run_import(work, oci_with_layer(work, t.bytes()))
    assert p.returncode == 0, p
    layers = os.listdir(store(work, "layers"))
    d = store(work, "layers", [l for l in layers if not l.endswith(".json")][0])
    assert stat.S_IMODE(os.lstat(os.path.join(d, "bin/suid")).st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(os.path.join(d, "bin/sgid")).st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(os.path.join(d, "sgid-dir")).st_mode) == 0o775
    assert stat.S_IMODE(os.lstat(os.path.join(d, "tmp")).st_mode) == 0o1777  # sticky kept


@pytest.mark.parametrize("target", ["/etc/shadow", "../../../../etc/shadow", "not-in-layer"])
def test_hard_links_outside_the_layer_are_refused(work, target):
    t = TarBuilder().dir("etc").hardlink("etc/shadow-copy", target)
    assert_refused(work, oci_with_layer(work, t.bytes()), "a hard link to what is not a file")


def test_a_100k_entry_bomb_is_refused(work):
    t = TarBuilder()
    ti = tarfile.TarInfo("x")
    for i in range(100_000):
        ti.name = "f%d" % i
        t.tar.addfile(ti)
    path = oci_with_layer(work, t.bytes())
    assert_refused(work, path, "more than 65536 entries")


def test_a_huge_declared_size_is_refused_before_anything_is_written(work):
    ti = tarfile.TarInfo("huge")
    ti.size = 1 << 40  # 1 TiB declared, a few bytes present
    raw = bytearray(ti.tobuf(format=tarfile.PAX_FORMAT)) + b"x" * 512 + b"\0" * 1024
    assert_refused(work, oci_with_layer(work, bytes(raw)), "over the limit of 8589934592 bytes")


def test_a_layer_whose_digest_does_not_match_is_refused(work):
    files, layers, config = image_util.oci_files()
    blob = [k for k in files if k.startswith("blobs/") and files[k][:2] == b"\x1f\x8b"][0]
    files[blob] = image_util.gz(image_util.layer_two() + b"\0" * 1024)  # swapped content
    path = os.path.join(work, "swapped.tar")
    image_util.write_tar(path, files)
    assert_refused(work, path, "digest mismatch")


def test_a_config_whose_diff_ids_do_not_match_is_refused(work):
    layers = image_util.default_layers()
    lying = image_util.image_config([image_util.sha256(b"other"), image_util.sha256(layers[1])])
    img = image_util.write_docker_save(os.path.join(work, "lying.tar"), config=lying)
    assert_refused(work, img.path, "the image config's diff_id says")


def test_a_config_with_fewer_diff_ids_than_layers_is_refused(work):
    layers = image_util.default_layers()
    short = image_util.image_config([image_util.sha256(layers[0])])
    img = image_util.write_oci_tar(os.path.join(work, "short.tar"), config=short)
    assert_refused(work, img.path, "lists 1 diff_ids for 2 layers")


def test_a_manifest_pointing_outside_the_archive_is_refused(work):
    files, layers, config = image_util.docker_files()
    m = json.loads(files["manifest.json"])
    m[0]["Layers"][0] = "../../../../../../etc/passwd"
    files["manifest.json"] = json.dumps(m).encode()
    path = os.path.join(work, "m.tar")
    image_util.write_tar(path, files)
    assert_refused(work, path, "a path outside the archive")
    # an OCI descriptor's digest is the only path it gives: one that is no digest is refused
    files, layers, config = image_util.oci_files()
    idx = json.loads(files["index.json"])
    idx["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
    files["index.json"] = json.dumps(idx).encode()
    image_util.write_tar(path, files)
    assert_refused(work, path, "not a sha256 digest")


def test_an_archive_member_that_is_a_symlink_out_is_refused(work):
    """The outer archive (docker save) may not carry a symlink leaving it: manifest.json as
    a link to a host file would be read as the manifest."""
    t = TarBuilder().symlink("manifest.json", "/etc/passwd")
    path = os.path.join(work, "link.tar")
    with open(path, "wb") as f:
        f.write(t.bytes())
    assert_refused(work, path, "a symlink pointing outside the destination")


def test_a_layout_directory_with_a_symlink_out_cannot_be_read_through_it(work):
    """An OCI layout directory given by path: its files are opened beneath it, a symlink
    to a host file resolves inside the layout."""
    img = image_util.write_oci_layout(os.path.join(work, "layout"))
    os.rename(os.path.join(img.path, "index.json"), os.path.join(img.path, "index.json.orig"))
    os.symlink("/etc/hostname", os.path.join(img.path, "index.json"))
    p = run_import(work, img.path)
    assert p.returncode == 125, p
    assert b"index.json" in p.stderr
    assert os.listdir(store(work, "tmp")) == []


def test_a_refusal_in_the_last_layer_leaves_none_of_the_earlier_ones(work):
    """Layer one unpacks (into the import's tmp dir), layer two is refused: the import is
    atomic, the store gets neither."""
    bad = TarBuilder().dir("etc").file("../escape", b"x").bytes()
    img = image_util.write_oci_tar(os.path.join(work, "two.tar"),
                                   layers=[image_util.layer_one(), bad])
    assert_refused(work, img.path, "layer 2/2")


# issue 13: review13
def test_more_than_128_layers_are_refused_before_any_is_unpacked(work):
    """Each layer has its own bounds; an image of thousands of small ones would multiply
    them (and overlayfs stacks at most 500 lower dirs anyway)."""
    layers = [TarBuilder().file("f%d" % i, b"x").bytes() for i in range(129)]
    img = image_util.write_oci_tar(os.path.join(work, "tall.tar"), layers=layers)
    assert_refused(work, img.path, "the image has 129 layers, more than 128")


def test_file_capabilities_and_other_xattrs_of_the_tar_are_not_carried(work):
    """security.capability on a file would grant capabilities on exec inside a sandbox; a
    pax header carries it (SCHILY.xattr.*), and tarx applies no xattr at all."""
    t = TarBuilder().dir("bin")
    ti = tarfile.TarInfo("bin/capped")
    data = b"#!/bin/sh\n"
    ti.size, ti.mode = len(data), 0o755
    ti.pax_headers = {"SCHILY.xattr.security.capability":
                      "\x01\x00\x00\x02\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff",
                      "SCHILY.xattr.user.evil": "x",
                      "SCHILY.acl.access": "user::rwx,user:0:rwx,group::r-x,mask::rwx,other::rwx"}
    t.tar.addfile(ti, io.BytesIO(data))
    p = run_import(work, oci_with_layer(work, t.bytes()))
    assert p.returncode == 0, p
    layers = os.listdir(store(work, "layers"))
    d = store(work, "layers", [l for l in layers if not l.endswith(".json")][0])
    assert os.listxattr(os.path.join(d, "bin/capped")) == []


def test_an_archives_own_name_does_not_take_a_tag_another_image_holds(work):
    """The store has python:3.12, which policies name. A hostile archive calling itself
    python:3.12, imported by a caller as vendor:1, must not become what they run."""
    trusted = image_util.write_oci_tar(os.path.join(work, "trusted.tar"), tag="python:3.12")
    assert run_import(work, trusted.path).returncode == 0
    evil_layer = TarBuilder().dir("bin").file("bin/sh", b"#!/evil\n", mode=0o755).bytes()
    for write in (image_util.write_oci_tar, image_util.write_docker_save):
        evil = write(os.path.join(work, "evil.tar"), tag="python:3.12", layers=[evil_layer],
                     config=image_util.image_config([image_util.sha256(evil_layer)]))
        p = run_import(work, evil.path, "--tag", "vendor:1")
        assert p.returncode == 0, p
        assert p.stdout.decode().strip() == evil.id
        recs = {}
        for f in os.listdir(store(work, "images")):
            if f.endswith(".json"):
                with open(store(work, "images", f)) as fh:
                    r = json.load(fh)
                recs[r["id"]] = r["tags"]
        assert recs[trusted.id] == ["python:3.12"], recs
        assert recs[evil.id] == ["vendor:1"], recs
    # the caller's own tag still moves one
    p = run_import(work, evil.path, "--tag", "python:3.12")
    assert p.returncode == 0, p
    with open(store(work, "images", trusted.id[7:] + ".json")) as fh:
        assert json.load(fh)["tags"] == []
