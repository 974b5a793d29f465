"""Test images made by the tests themselves, with Python's tarfile, hashlib and json only: a
busybox-static root filesystem in two layers (the second whites out a file of the first and
makes a directory opaque), written as an OCI image layout (a directory or a tar), a
`docker save` tar, or a plain rootfs tar. Deterministic (fixed times and owners), so the
same call gives the same digests. Other tests (the container backend's image root, the
image build) use these: keep the API stable.

    img = write_oci_layout(dir)            # -> TestImage
    img = write_oci_tar(path)
    img = write_docker_save(path)
    img = write_rootfs_tar(path, compress="gz")
    img.id, img.diff_ids, img.tag, img.config  # what the store must report
"""
import gzip
import hashlib
import io
import json
import os
import tarfile

BUSYBOX = "/bin/busybox"  # Debian's busybox-static (scripts/install-deps.sh)
MTIME = 1700000000
TAG = "agentd-test/busybox:two-layers"
APPLETS = ["sh", "ls", "cat", "echo", "true", "false", "id", "env", "pwd", "sleep", "stat",
           "touch", "mkdir", "rm", "test", "readlink", "wc", "head"]
# The image config's defaults (docs/images.md#defaults).
ENV = ["PATH=/bin:/usr/bin", "IMAGE_VAR=from-image"]
WORKDIR = "/home/user"
USER = "1000:1000"
CMD = ["/bin/sh", "-c", "echo hello from the image"]

# What a sandbox on the image sees, by path: present with content, or absent.
LAYER1_MOTD = b"layer one\n"
LAYER2_MOTD = b"layer two\n"
EXPECT_PRESENT = {"etc/motd": LAYER2_MOTD, "opt/dir/new.txt": b"new in layer two\n",
                  "etc/kept.txt": b"kept from layer one\n"}
EXPECT_ABSENT = ["etc/removed.txt", "opt/dir/old.txt"]
# In the unpacked layers of the store (DIR/layers/<hex>/): the whiteout of layer two.
WHITEOUT = "etc/removed.txt"
OPAQUE_DIR = "opt/dir"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class TarBuilder:
    """An uncompressed tar in memory, entries with fixed metadata."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, type_, mode, uid=0, gid=0):
        ti = tarfile.TarInfo(name)
        ti.type = type_
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = MTIME
        return ti

    def dir(self, name, mode=0o755, uid=0, gid=0):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, uid, gid))
        return self

    def file(self, name, data, mode=0o644, uid=0, gid=0):
        ti = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))
        return self

    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)
        return self

    def hardlink(self, name, target):
        ti = self._info(name, tarfile.LNKTYPE, 0o644)
        ti.linkname = target
        self.tar.addfile(ti)
        return self

    def raw(self, ti, data=None):
        """Any TarInfo as given (hostile archives): data None = no payload."""
        self.tar.addfile(ti, io.BytesIO(data) if data is not None else None)
        return self

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def layer_one():
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    t = TarBuilder()
    t.dir("./")
    for d in ["bin", "etc", "home", "opt", "opt/dir", "usr", "usr/bin"]:
        t.dir(d)
    t.dir("tmp", mode=0o1777)
    t.dir("home/user", mode=0o755, uid=1000, gid=1000)
    t.file("bin/busybox", busybox, mode=0o755)
    for a in APPLETS:
        t.symlink("bin/" + a, "busybox")
    t.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    t.file("etc/group", b"root:x:0:\nuser:x:1000:\n")
    t.file("etc/motd", LAYER1_MOTD)
    t.file("etc/removed.txt", b"whited out by layer two\n")
    t.file("etc/kept.txt", b"kept from layer one\n")
    t.file("opt/dir/old.txt", b"hidden by the opaque dir of layer two\n")
    return t.bytes()


def layer_two():
    t = TarBuilder()
    t.dir("etc").dir("opt").dir("opt/dir")
    t.file("etc/.wh.removed.txt", b"")
    t.file("opt/dir/.wh..wh..opq", b"")
    t.file("opt/dir/new.txt", b"new in layer two\n")
    t.file("etc/motd", LAYER2_MOTD)
    return t.bytes()


def image_config(diff_ids, env=ENV, workdir=WORKDIR, user=USER, cmd=CMD):
    return {
        "architecture": "amd64" if os.uname().machine == "x86_64" else "arm64",
        "os": "linux",
        "config": {"Env": list(env), "WorkingDir": workdir, "User": user, "Cmd": list(cmd)},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created_by": "image_util.py layer one"},
                    {"created_by": "image_util.py layer two"}],
    }


def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class TestImage:
    """What was written: the store must report these."""
    __test__ = False  # not a pytest class

    def __init__(self, path, layers, config_bytes, tag, fmt):
        self.path = path
        self.layers = layers  # uncompressed layer tars
        self.diff_ids = [sha256(l) for l in layers]
        self.config_bytes = config_bytes
        self.config = json.loads(config_bytes)
        self.id = sha256(config_bytes)
        self.tag = tag
        self.format = fmt

    def __repr__(self):
        return f"TestImage({self.format} {self.path} {self.id[:19]})"


def default_layers():
    return [layer_one(), layer_two()]


def gz(data):
    return gzip.compress(data, mtime=0)


def oci_files(layers=None, config=None, tag=TAG, compress=True):
    """{relative path: bytes} of an OCI image layout, and its TestImage parts."""
    layers = layers if layers is not None else default_layers()
    diff_ids = [sha256(l) for l in layers]
    config_bytes = dumps(config if config is not None else image_config(diff_ids))
    files = {"oci-layout": dumps({"imageLayoutVersion": "1.0.0"})}
    blobs = {}
    descs = []
    for l in layers:
        blob = gz(l) if compress else l
        blobs[sha256(blob)] = blob
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar" +
                      ("+gzip" if compress else ""), "digest": sha256(blob), "size": len(blob)})
    blobs[sha256(config_bytes)] = config_bytes
    manifest = dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": sha256(config_bytes), "size": len(config_bytes)},
                      "layers": descs})
    blobs[sha256(manifest)] = manifest
    ann = {"io.containerd.image.name": tag, "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[-1]} if tag else {}
    files["index.json"] = dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(manifest),
         "size": len(manifest), "annotations": ann}]})
    for d, b in blobs.items():
        files["blobs/sha256/" + d.split(":", 1)[1]] = b
    return files, layers, config_bytes


def write_tree(dest, files):
    for rel, data in files.items():
        p = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)


def write_tar(path, files, order=None):
    t = TarBuilder()
    made = set()
    for rel in order or files:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                t.dir(d)
                made.add(d)
        t.file(rel, files[rel])
    with open(path, "wb") as f:
        f.write(t.bytes())


def write_oci_layout(dest, tag=TAG, **kw):
    """An OCI image layout directory at dest (made)."""
    files, layers, config = oci_files(tag=tag, **kw)
    os.makedirs(dest, exist_ok=True)
    write_tree(dest, files)
    return TestImage(dest, layers, config, tag, "oci-layout")


def write_oci_tar(path, tag=TAG, **kw):
    """The same layout as a tar file."""
    files, layers, config = oci_files(tag=tag, **kw)
    write_tar(path, files)
    return TestImage(path, layers, config, tag, "oci-layout")


def docker_files(layers=None, config=None, tag=TAG):
    layers = layers if layers is not None else default_layers()
    diff_ids = [sha256(l) for l in layers]
    config_bytes = dumps(config if config is not None else image_config(diff_ids))
    cfg_name = sha256(config_bytes).split(":", 1)[1] + ".json"
    files = {cfg_name: config_bytes}
    paths = []
    for i, l in enumerate(layers):
        d = hashlib.sha256(("layer%d" % i).encode() + l).hexdigest()
        files[d + "/layer.tar"] = l
        files[d + "/VERSION"] = b"1.0"
        paths.append(d + "/layer.tar")
    files["manifest.json"] = json.dumps(
        [{"Config": cfg_name, "RepoTags": [tag] if tag else [], "Layers": paths}]).encode()
    return files, layers, config_bytes


def write_docker_save(path, tag=TAG, **kw):
    """A `docker save` tar (the legacy layout: <id>/layer.tar, <config>.json, manifest.json)."""
    files, layers, config = docker_files(tag=tag, **kw)
    write_tar(path, files)
    return TestImage(path, layers, config, tag, "docker-archive")


def write_rootfs_tar(path, compress=None, tag="agentd-test/rootfs:latest"):
    """Both layers' result as one plain root filesystem tar (gz optional)."""
    layer = layer_one_flat()
    data = gz(layer) if compress == "gz" else layer
    with open(path, "wb") as f:
        f.write(data)
    diff = sha256(layer)
    return TestImage(path, [layer], generated_config(diff), tag, "rootfs")


def layer_one_flat():
    """Layer one with layer two applied, no whiteouts: a plain rootfs."""
    src = tarfile.open(fileobj=io.BytesIO(layer_one()))
    t = TarBuilder()
    for ti in src.getmembers():
        if ti.name in ("etc/removed.txt", "opt/dir/old.txt", "etc/motd"):
            continue
        t.raw(ti, src.extractfile(ti).read() if ti.isfile() else None)
    t.file("etc/motd", LAYER2_MOTD)
    t.file("opt/dir/new.txt", b"new in layer two\n")
    return t.bytes()


def generated_config(diff):
    """The config agentd generates for a rootfs tar (src/lib/image/import.c)."""
    arch = "amd64" if os.uname().machine == "x86_64" else "arm64"
    return dumps({"architecture": arch, "os": "linux",
                  "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                  "rootfs": {"type": "layers", "diff_ids": [diff]}})
