"""issue 13: `agentd image build --run` (docs/images.md#building-templates). The commands run
inside a sandbox; what they leave in its root's upper layer is copied by the host into a new
layer, and is as hostile as anything a sandbox writes: links never followed, no fifo or
set-id bit kept, bounded, and nothing written on the host."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import image_util  # noqa: E402

from .secsuite import agentd  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="image roots need root")


@pytest.fixture
def store(tmp_path):
    """A store holding the two-layer busybox test image (no network, no Debian mirror)."""
    state = str(tmp_path / "state")
    img = image_util.write_oci_layout(str(tmp_path / "oci"))
    r = agentd("image", "import", img.path, "--state-dir", state)
    assert r.rc == 0, r
    return state


def build(state, *args):
    return agentd("image", "build", "--state-dir", state, "--from", image_util.TAG, *args,
                  env={"AGENTD_IMAGE_DIR": os.path.join(state, "images")}, timeout=300)


def layer_dir(state, tag):
    r = agentd("image", "inspect", tag, "--json", "--state-dir", state)
    assert r.rc == 0, r
    top = json.loads(r.stdout)["layers"][-1].split(":", 1)[1]
    return os.path.join(state, "images", "layers", top)


def test_what_the_commands_plant_is_stored_as_it_is_never_followed(store, tmp_path):
    marker = str(tmp_path / "host-marker")
    r = build(store, "--run",
              f"B=/bin/busybox; $B ln -s /etc/shadow /leak && mkdir /d && "
              f"$B ln -s {tmp_path} /d/out && echo x > {marker}; $B cp $B /suid && "
              "$B chmod 4755 /suid && $B chmod 2755 /d && echo kept > /kept && $B ln /kept /hard",
              "--tag", "attack:1")
    assert r.rc == 0, r
    top = layer_dir(store, "attack:1")
    # a symlink to a host path is a symlink in the layer, never the host file's content
    assert os.readlink(os.path.join(top, "leak")) == "/etc/shadow"
    assert os.readlink(os.path.join(top, "d/out")) == str(tmp_path)
    # the command's write went to the sandbox's root, not the host's path of that name
    assert not os.path.exists(marker)
    # no set-id bit survives into a layer; a hard link is a file of its own
    assert os.stat(os.path.join(top, "suid")).st_mode & 0o6000 == 0
    assert os.stat(os.path.join(top, "d")).st_mode & 0o6000 == 0
    for name in ("kept", "hard"):
        with open(os.path.join(top, name)) as f:
            assert f.read() == "kept\n"
    # stored with the ids the files have inside (the sandbox's root is 0), not its host id
    st = os.lstat(os.path.join(top, "kept"))
    assert (st.st_uid, st.st_gid) == (0, 0), st


def test_a_fifo_is_left_out_of_the_layer(store):
    r = build(store, "--run", "/bin/busybox mkfifo /fifo && echo f > /file", "--tag", "fifo:1")
    assert r.rc == 0, r
    top = layer_dir(store, "fifo:1")
    assert not os.path.lexists(os.path.join(top, "fifo"))
    assert os.path.isfile(os.path.join(top, "file"))


def test_a_tree_nested_past_the_bound_fails_the_build_and_leaves_nothing(store):
    r = build(store, "--run",
              "i=0; while test $i -lt 300; do mkdir d && cd d || exit 1; i=$((i+1)); done",
              "--tag", "deep:1")
    assert r.rc == 125 and b"nests deeper than 256" in r.stderr, r
    assert agentd("image", "inspect", "deep:1", "--state-dir", store).rc != 0
    assert os.listdir(os.path.join(store, "images", "tmp")) == []
