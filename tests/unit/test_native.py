"""The compiled extension `plurel_ray._native` loads and validates store headers."""

import struct

import pytest

from plurel_ray import _native, store


def header(magic: bytes = b"PLRLSTOR", version: int = 1, reserved: int = 0) -> bytes:
    return magic + struct.pack("<II", version, reserved)


def test_extension_is_the_compiled_abi3_module():
    assert _native.__file__.endswith((".abi3.so", ".pyd"))
    assert isinstance(_native.__version__, str)


def test_store_format_version_is_1():
    assert _native.STORE_FORMAT_VERSION == 1
    assert store.STORE_FORMAT_VERSION == 1
    assert _native.STORE_MAGIC == b"PLRLSTOR"


def test_format_info_describes_the_build():
    info = store.store_format()
    assert info == {
        "magic": b"PLRLSTOR",
        "version": 1,
        "crate_version": _native.__version__,
    }


def test_check_header_accepts_valid_header_and_ignores_trailing_bytes():
    assert _native.check_header(header()) == 1
    assert _native.check_header(header() + b"payload") == 1


@pytest.mark.parametrize("length", [0, 1, 8, 15])
def test_check_header_rejects_short_input(length):
    with pytest.raises(ValueError, match=rf"too short: got {length} bytes, need 16"):
        _native.check_header(header()[:length])


def test_check_header_rejects_bad_magic():
    with pytest.raises(ValueError, match=r"bad store magic.*PLRLSTOR.*NOTSTORE"):
        _native.check_header(header(magic=b"NOTSTORE"))


@pytest.mark.parametrize("version", [0, 2, 2**32 - 1])
def test_check_header_rejects_unsupported_version(version):
    with pytest.raises(ValueError, match=rf"unsupported store format version {version}\b"):
        _native.check_header(header(version=version))


def test_check_header_rejects_non_bytes():
    with pytest.raises(TypeError):
        _native.check_header("PLRLSTOR")  # type: ignore[arg-type]
