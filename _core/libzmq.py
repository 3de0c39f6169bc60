"""libzmq's functions, called directly by the compiled build's drain and send paths:
looked up at run time (dlsym) in the libzmq that pyzmq's sockets belong to, so there
are no libzmq headers or link step at build time. The pure-Python twin never loads
them (its paths go through pyzmq).

One source for both builds; compiled by Cython with libzmq.pxd, which declares the
table of functions (`Libzmq`).
"""
from __future__ import annotations

import sys

try:
    import cython

    _COMPILED = cython.compiled
except ImportError:  # plain Python without Cython installed: the pure-Python twin
    _COMPILED = False


def fallback_reason(prefer_libzmq, disabled_by):
    """"" when this build calls libzmq directly (its functions loaded now, if they were
    not), else why not: the pure-Python build, the caller's choice (`disabled_by`: the
    call that made it), or the lookup failing (`load_libzmq`)."""
    if not _COMPILED:
        return "pure-Python build"
    if not prefer_libzmq:
        return f"libzmq path disabled by {disabled_by}"
    return load_libzmq()


def libzmq_api():
    """Compiled build only: the table of libzmq's functions, filled by `load_libzmq`."""
    return cython.address(_API)


def _libzmq_candidates():
    """Shared objects to ask for zmq_msg_recv: pyzmq's backend extension first (dlsym
    searches its dependencies, i.e. the very libzmq pyzmq's sockets belong to), then any
    libzmq mapped into this process."""
    paths = []
    backend = sys.modules.get("zmq.backend.cython._zmq")
    if backend is not None and getattr(backend, "__file__", None):
        paths.append(backend.__file__)
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").rpartition(" ")[2]
                if "libzmq" in path.rpartition("/")[2] and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    return paths


def load_libzmq():
    """Compiled build only: fill the table of libzmq's functions (receive, send, and a
    message's properties: the User-Id of an authenticated connection), once
    zmq is imported. Returns "" or why not."""
    zmq = sys.modules.get("zmq")
    if zmq is None:
        return "zmq is not imported"
    for path in _libzmq_candidates():
        encoded = path.encode()
        lib = dlopen(encoded, RTLD_NOW | RTLD_NOLOAD)
        if lib == cython.NULL:
            continue
        version = cython.cast(zmq_version_fn, dlsym(lib, b"zmq_version"))
        init = dlsym(lib, b"zmq_msg_init")
        recv = dlsym(lib, b"zmq_msg_recv")
        data = dlsym(lib, b"zmq_msg_data")
        close = dlsym(lib, b"zmq_msg_close")
        errno_ = dlsym(lib, b"zmq_errno")
        send = dlsym(lib, b"zmq_send")
        init_size = dlsym(lib, b"zmq_msg_init_size")
        msg_send = dlsym(lib, b"zmq_msg_send")
        gets = dlsym(lib, b"zmq_msg_gets")
        dlclose(lib)  # pyzmq keeps it loaded; RTLD_NOLOAD only took a reference
        if (
            version == cython.NULL or init == cython.NULL or recv == cython.NULL
            or data == cython.NULL or close == cython.NULL or errno_ == cython.NULL
            or send == cython.NULL or init_size == cython.NULL or msg_send == cython.NULL
            or gets == cython.NULL
        ):
            continue
        version(cython.address(major), cython.address(minor), cython.address(patch))
        if (major, minor, patch) != tuple(zmq.zmq_version_info()):
            continue  # a different libzmq than the one pyzmq's sockets live in
        _API.msg_init = cython.cast(zmq_msg_init_fn, init)
        _API.msg_recv = cython.cast(zmq_msg_recv_fn, recv)
        _API.msg_data = cython.cast(zmq_msg_data_fn, data)
        _API.msg_close = cython.cast(zmq_msg_close_fn, close)
        _API.last_errno = cython.cast(zmq_errno_fn, errno_)
        _API.send = cython.cast(zmq_send_fn, send)
        _API.msg_init_size = cython.cast(zmq_msg_init_size_fn, init_size)
        _API.msg_send = cython.cast(zmq_msg_send_fn, msg_send)
        _API.msg_gets = cython.cast(zmq_msg_gets_fn, gets)
        return ""
    return "no loaded libzmq matching pyzmq's version was found"
