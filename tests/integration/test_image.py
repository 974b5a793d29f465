"""`agentd image` on a local store (no daemon): import of every format the test writes
itself (tests/integration/image_util.py), what the store holds afterwards, references,
tags, rm, prune and export (docs/images.md, docs/cli.md#image)."""
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile

import pytest

from conftest import AGENTD
import image_util


def image(state, *args, check=True, env=None):
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "AGENTD_SOCKET": "/nonexistent.sock"}
    e.update(env or {})
    p = subprocess.run([AGENTD, "image", *args, "--state-dir", state], capture_output=True,
                       timeout=300, env=e)
    if check:
        assert p.returncode == 0, p
    return p


def as_json(state, *args):
    p = image(state, *args, "--json")
    return json.loads(p.stdout)


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="agentd-img-", dir="/var/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def store(work):
    return os.path.join(work, "state")


def layer_dir(work, diff_id):
    return os.path.join(store(work), "images", "layers", diff_id.split(":", 1)[1])


def test_store_dirs_are_private(work):
    image(store(work), "ls")
    root = os.path.join(store(work), "images")
    for d in ["", "blobs", "layers", "images", "tmp"]:
        assert stat.S_IMODE(os.stat(os.path.join(root, d)).st_mode) == 0o700, d


@pytest.mark.parametrize("fmt", ["oci-dir", "oci-tar", "docker", "oci-tar-uncompressed"])
def test_import_every_format_gives_the_images_id_tags_layers_and_defaults(work, fmt):
    src = os.path.join(work, "src")
    if fmt == "oci-dir":
        img = image_util.write_oci_layout(src)
    elif fmt == "oci-tar":
        img = image_util.write_oci_tar(src + ".tar")
    elif fmt == "oci-tar-uncompressed":
        img = image_util.write_oci_tar(src + ".tar", compress=False)
    else:
        img = image_util.write_docker_save(src + ".tar")
    info = as_json(store(work), "import", img.path)
    assert info["id"] == img.id
    assert info["tags"] == [img.tag]
    assert info["layers"] == img.diff_ids
    assert info["source"] == img.format
    assert info["in_use"] is False
    assert info["config"] == {"env": image_util.ENV, "workdir": image_util.WORKDIR,
                              "user": image_util.USER, "cmd": image_util.CMD,
                              "entrypoint": []}
    assert info["size_bytes"] >= os.path.getsize(image_util.BUSYBOX)
    # the same by every kind of reference
    for ref in [img.tag, img.id, img.id[7:19], img.id[7:]]:
        assert as_json(store(work), "inspect", ref)["id"] == img.id, ref
    assert os.listdir(os.path.join(store(work), "images", "tmp")) == []


def test_layers_are_unpacked_with_whiteouts_opaque_dirs_owners_and_modes(work):
    img = image_util.write_oci_layout(os.path.join(work, "src"))
    image(store(work), "import", img.path)
    l1, l2 = (layer_dir(work, d) for d in img.diff_ids)
    with open(os.path.join(l1, "bin/busybox"), "rb") as f, open(image_util.BUSYBOX, "rb") as g:
        assert f.read() == g.read()
    assert os.readlink(os.path.join(l1, "bin/sh")) == "busybox"
    st = os.lstat(os.path.join(l1, "home/user"))
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert stat.S_IMODE(os.lstat(os.path.join(l1, "tmp")).st_mode) == 0o1777
    wh = os.lstat(os.path.join(l2, image_util.WHITEOUT))
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert not os.path.lexists(os.path.join(l2, "etc/.wh.removed.txt"))
    opq = os.path.join(l2, image_util.OPAQUE_DIR)
    assert os.getxattr(opq, "user.overlay.opaque") == b"y"
    assert os.getxattr(opq, "trusted.overlay.opaque") == b"y"
    assert not os.path.lexists(os.path.join(opq, ".wh..wh..opq"))
    with open(os.path.join(l2, "etc/motd"), "rb") as f:
        assert f.read() == image_util.LAYER2_MOTD


def test_a_layer_already_there_is_shared_not_unpacked_again(work):
    a = image_util.write_oci_layout(os.path.join(work, "a"))
    image(store(work), "import", a.path)
    marker = os.path.join(layer_dir(work, a.diff_ids[0]), "etc/kept.txt")
    ino = os.stat(marker).st_ino
    # the same layers under another config (another image)
    b = image_util.write_docker_save(os.path.join(work, "b.tar"), tag="other:1",
                                     config=image_util.image_config(a.diff_ids, env=["B=1"]))
    info = as_json(store(work), "import", b.path)
    assert info["id"] != a.id and info["layers"] == a.diff_ids
    assert os.stat(marker).st_ino == ino
    assert len(os.listdir(os.path.join(store(work), "images", "layers"))) == 4  # 2 + .json


@pytest.mark.parametrize("compress", [None, "gz"])
def test_a_rootfs_tar_needs_a_tag_and_gets_a_generated_config(work, compress):
    img = image_util.write_rootfs_tar(os.path.join(work, "rootfs.tar"), compress=compress)
    p = image(store(work), "import", img.path, check=False)
    assert p.returncode == 125 and b"give it a tag" in p.stderr, p
    info = as_json(store(work), "import", img.path, "--tag", "rootfs")
    assert info["tags"] == ["rootfs:latest"]
    assert info["id"] == img.id
    assert info["layers"] == img.diff_ids
    assert info["source"] == "rootfs"
    assert info["config"]["env"][0].startswith("PATH=")


def test_ls_tag_rm_and_prune(work):
    img = image_util.write_oci_tar(os.path.join(work, "a.tar"))
    image(store(work), "import", img.path)
    image(store(work), "tag", img.tag, "second")
    imgs = as_json(store(work), "ls")["images"]
    assert [i["id"] for i in imgs] == [img.id]
    assert sorted(imgs[0]["tags"]) == sorted([img.tag, "second:latest"])
    human = image(store(work), "ls").stdout.decode()
    assert img.id[7:19] in human and "second:latest" in human
    # rm of one of two tags only untags
    image(store(work), "rm", "second")
    assert as_json(store(work), "inspect", img.id)["tags"] == [img.tag]
    p = image(store(work), "inspect", "second", check=False)
    assert p.returncode == 125 and b"no such image" in p.stderr
    # the last name: the image, and (no import running) its layers and blobs
    image(store(work), "rm", img.tag)
    assert as_json(store(work), "ls")["images"] == []
    root = os.path.join(store(work), "images")
    assert os.listdir(os.path.join(root, "layers")) == []
    assert os.listdir(os.path.join(root, "blobs", "sha256")) == []
    assert [f for f in os.listdir(os.path.join(root, "images")) if not f.startswith(".")] == []


def test_prune_removes_leftovers_of_a_crashed_import(work):
    image(store(work), "ls")
    left = os.path.join(store(work), "images", "tmp", "work-crashed")
    os.makedirs(os.path.join(left, "layer-x"))
    with open(os.path.join(left, "layer-x", "f"), "wb") as f:
        f.write(b"x" * 100000)
    out = as_json(store(work), "prune")
    assert out["freed_bytes"] >= 100000
    assert os.listdir(os.path.join(store(work), "images", "tmp")) == []


def test_tagging_moves_a_tag_between_images(work):
    a = image_util.write_oci_tar(os.path.join(work, "a.tar"), tag="app:1")
    b = image_util.write_docker_save(os.path.join(work, "b.tar"), tag="app:2",
                                     config=image_util.image_config(
                                         image_util.oci_files()[0] and
                                         [image_util.sha256(l) for l in image_util.default_layers()],
                                         env=["X=2"]))
    image(store(work), "import", a.path)
    image(store(work), "import", b.path)
    image(store(work), "tag", "app:2", "app:1")
    assert as_json(store(work), "inspect", "app:1")["id"] == b.id
    assert as_json(store(work), "inspect", a.id)["tags"] == []


def test_bad_references_and_unknown_images_are_clear_errors(work):
    image(store(work), "ls")
    for ref, msg in [("nope", b"no such image"), ("sha256:xyz", b"not an image id"),
                     ("sha256:" + "0" * 64, b"no such image")]:
        p = image(store(work), "inspect", ref, check=False)
        assert p.returncode == 125 and msg in p.stderr, (ref, p)
    p = image(store(work), "tag", "nope", "bad tag!", check=False)
    assert p.returncode == 125 and b"not an image name" in p.stderr


def test_export_gives_a_docker_archive_that_imports_to_the_same_root(work):
    img = image_util.write_oci_layout(os.path.join(work, "src"))
    image(store(work), "import", img.path)
    out = os.path.join(work, "out.tar")
    image(store(work), "export", img.tag, "-o", out)
    with tarfile.open(out) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == [img.tag]
        layer2 = tarfile.open(fileobj=t.extractfile(manifest[0]["Layers"][1]))
        names = layer2.getnames()
        assert "etc/.wh.removed.txt" in names and "opt/dir/.wh..wh..opq" in names
        cfg = json.load(t.extractfile(manifest[0]["Config"]))
        assert cfg["config"]["Env"] == image_util.ENV
    # into a second store: the same files, whiteouts and owners
    other = os.path.join(work, "other")
    info = as_json(other, "import", out)
    assert info["config"]["cmd"] == image_util.CMD
    l2 = os.path.join(other, "images", "layers", info["layers"][1].split(":")[1])
    assert stat.S_ISCHR(os.lstat(os.path.join(l2, image_util.WHITEOUT)).st_mode)
    assert os.getxattr(os.path.join(l2, image_util.OPAQUE_DIR), "user.overlay.opaque") == b"y"
    l1 = os.path.join(other, "images", "layers", info["layers"][0].split(":")[1])
    assert os.lstat(os.path.join(l1, "home/user")).st_uid == 1000


@pytest.mark.parametrize("tool", ["xz", "zstd"])
def test_xz_and_zstd_compressed_archives_and_layers(work, tool):
    """A compressed rootfs tar, and a compressed OCI tar."""
    def squeeze(data):
        return subprocess.run([tool, "-c"], input=data, capture_output=True, check=True).stdout
    img = image_util.write_rootfs_tar(os.path.join(work, "r.tar"))
    with open(img.path, "rb") as f:
        plain = f.read()
    packed = os.path.join(work, "r.tar." + tool)
    with open(packed, "wb") as f:
        f.write(squeeze(plain))
    info = as_json(store(work), "import", packed, "--tag", "squeezed")
    assert info["id"] == img.id and info["layers"] == img.diff_ids
    # a whole OCI tar compressed, its layers plain
    oci = image_util.write_oci_tar(os.path.join(work, "o.tar"), compress=False)
    with open(oci.path, "rb") as f:
        data = f.read()
    with open(oci.path + "." + tool, "wb") as f:
        f.write(squeeze(data))
    assert as_json(store(work), "import", oci.path + "." + tool)["id"] == oci.id


def test_an_unprivileged_user_imports_into_its_own_store(work):
    """Rootless: the tar's owners cannot be applied (the files stay the caller's), the
    opaque dir gets user.overlay.opaque only, whiteouts are still 0/0 devices (Linux 5.8+
    lets anyone make those)."""
    img = image_util.write_oci_tar(os.path.join(work, "a.tar"))
    os.chmod(img.path, 0o644)
    os.chown(work, 65534, 65534)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        AGENTD, "image", "import", img.path, "--state-dir", store(work),
                        "--json"], capture_output=True, timeout=300,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                            "AGENTD_SOCKET": "/nonexistent.sock"})
    assert p.returncode == 0, p
    info = json.loads(p.stdout)
    assert info["id"] == img.id
    l1, l2 = (layer_dir(work, d) for d in img.diff_ids)
    assert os.lstat(os.path.join(l1, "home/user")).st_uid == 65534
    assert stat.S_ISCHR(os.lstat(os.path.join(l2, image_util.WHITEOUT)).st_mode)
    assert os.getxattr(os.path.join(l2, image_util.OPAQUE_DIR), "user.overlay.opaque") == b"y"
