"""Environment checks: can this Python run pureffcv? Each check is data (``Check``) so the CLI,
tests and other tools format or assert on the same facts."""
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, List

from .commands.cache import human

FFCV_BUILD = ("apt-get install pkg-config libopencv-dev libturbojpeg0-dev, then "
              "pip install --no-build-isolation ffcv==1.0.2 (or: make install)")


def ffcv_missing_message(error: ImportError) -> str:
    """What to tell a user whose ffcv does not import: exactly how to install it."""
    return (f"FFCV cannot be imported ({error}); pureffcv needs it. Install it with `make "
            f"install` in the pureffcv checkout, or by hand: {FFCV_BUILD}; its build needs "
            f"numpy and torch installed first")


@dataclass(frozen=True)
class Check:
    """One line of the report. ``required`` checks decide the exit code; the others are notes."""
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    @property
    def status(self) -> str:
        return "OK" if self.ok else ("FAIL" if self.required else "NOTE")


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def _import(name: str, distribution: str, fix: str, required: bool = True) -> Check:
    """Import ``name``; OK with the distribution's version, or the import error and ``fix``."""
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # a dependency of the module is missing
            return Check(name, False, f"cannot import: {exc}", fix, required)
        return Check(name, False, "not installed", fix, required)
    except Exception as exc:  # an extension that fails while loading, a broken install
        return Check(name, False, f"cannot import: {exc}".splitlines()[0], fix, required)
    return Check(name, True, _version(distribution), required=required)


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("python", sys.version_info >= (3, 10), f"{version} ({sys.executable})",
                 "use Python 3.10 or newer")


def check_ffcv() -> Check:
    return _import("ffcv", "ffcv", FFCV_BUILD)


def check_ffcv_extension() -> Check:
    try:
        from ffcv import _libffcv
    except Exception as exc:
        return Check("ffcv C ext", False, f"cannot load ffcv._libffcv: {exc}".splitlines()[0],
                     f"rebuild ffcv: {FFCV_BUILD}")
    return Check("ffcv C ext", True, _libffcv.__file__)


def _pkg_config_version(package: str) -> str:
    if shutil.which("pkg-config") is None:
        return ""
    found = subprocess.run(["pkg-config", "--modversion", package], capture_output=True,
                           text=True)
    return found.stdout.strip() if found.returncode == 0 else ""


def check_image_libraries() -> Check:
    """Which libjpeg-turbo and OpenCV the C extension resolves to (``ldd``), with the
    versions pkg-config reports for the development packages it was built against."""
    name = "jpeg/opencv"
    spec = importlib.util.find_spec("ffcv._libffcv")
    if spec is None or spec.origin is None:
        return Check(name, False, "ffcv's C extension is missing", FFCV_BUILD)
    if shutil.which("ldd") is None:
        return Check(name, False, "ldd not found: cannot list the linked libraries",
                     required=False)
    lines = subprocess.run(["ldd", spec.origin], capture_output=True, text=True).stdout
    missing = [line.split()[0] for line in lines.splitlines() if "not found" in line]
    if missing:
        return Check(name, False, f"unresolved: {', '.join(missing)}",
                     "apt-get install libopencv-dev libturbojpeg0-dev")
    linked = []
    for marker, package, label in (("libturbojpeg", "libturbojpeg", "libjpeg-turbo"),
                                   ("libopencv_core", "opencv4", "OpenCV")):
        library = next((line.split()[0] for line in lines.splitlines() if marker in line), None)
        if library is None:
            return Check(name, False, f"the C extension does not link {marker}", FFCV_BUILD)
        version = _pkg_config_version(package)
        linked.append(f"{library} ({label} {version})" if version else library)
    return Check(name, True, ", ".join(linked))


def check_numba() -> Check:
    found = _import("numba", "numba", "pip install numba")
    if not found.ok:
        return found
    import numba

    source = "NUMBA_NUM_THREADS" if "NUMBA_NUM_THREADS" in os.environ else "default: all CPUs"
    return Check("numba", True, f"{found.detail}, {numba.config.NUMBA_NUM_THREADS} threads "
                                f"({source})")


def check_numba_internals() -> Check:
    """The Numba internals the C entries and their cache use (``operations.numba_private``):
    a failure when one is missing; a note when the installed version is outside the range
    they were checked against (setup.cfg's pin) but they are all there."""
    try:
        from operations import numba_private
    except Exception as exc:
        return Check("numba internals", False, f"cannot import: {exc}".splitlines()[0],
                     "pip install numba (see setup.cfg for the range)")
    missing, outside = numba_private.missing(), numba_private.outside_checked_range()
    pins = [f"{name}>={first},<{excluded}"
            for name, (first, excluded) in numba_private.CHECKED.items()]
    checked = ", ".join(pins)
    fix = "pip install " + " ".join(f"'{pin}'" for pin in pins)
    if missing:
        return Check("numba internals", False, "missing: " + "; ".join(missing), fix)
    if outside:
        return Check("numba internals", False, "outside the checked range: " +
                     "; ".join(outside) + " (every private API is present)", fix,
                     required=False)
    return Check("numba internals", True, f"within the checked range ({checked})")


def check_torch() -> Check:
    found = _import("torch", "torch", "pip install torch (CPU: pip install torch==2.13.0)")
    if not found.ok:
        return found
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    return Check("torch", True, f"{torch.__version__}, {build}")


def check_cuda_devices() -> Check:
    """Not required: every stage also runs on the CPU."""
    try:
        import torch
    except Exception:
        return Check("cuda devices", False, "unknown: torch does not import", required=False)

    count = torch.cuda.device_count() if torch.version.cuda else 0
    if count == 0:
        return Check("cuda devices", False, "none: device stages run on the CPU",
                     required=False)
    names = ", ".join(f"{i}: {torch.cuda.get_device_name(i)}" for i in range(count))
    return Check("cuda devices", True, f"{count} ({names})", required=False)


def check_cupy() -> Check:
    return _import("cupy", "cupy", "optional (fused CUDA kernels; torch is used without it): "
                   "pip install 'pureffcv[gpu]'", required=False)


def check_lightning() -> Check:
    return _import("lightning", "lightning", "pip install lightning")


def check_no_torchvision() -> Check:
    """torchvision must be absent: Lightning imports it whenever it is installed, and with a
    torch it was not built for that import fails (``operator torchvision::nms does not
    exist``), so Lightning breaks. pureffcv does not use it."""
    try:
        installed = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    spec = importlib.util.find_spec("torchvision")
    if installed is None and spec is None:
        return Check("torchvision", True, "not installed (as required)")
    where = installed or (spec.origin if spec and spec.origin else "found on sys.path")
    return Check("torchvision", False, f"installed ({where}): Lightning imports it and breaks",
                 "pip uninstall -y torchvision")


def check_pillow() -> Check:
    found = _import("PIL", "pillow", "pip install pillow")
    if not found.ok:
        return found
    from PIL import features

    webp = "WebP supported" if features.check("webp") else "no WebP support"
    return Check("pillow", True, f"{found.detail}, {webp}")


def check_numba_cache() -> Check:
    """Not required: where compiled kernels are kept between processes, and how much."""
    from operations import cache

    if not cache.enabled():
        return Check("numba cache", False, "off (PUREFFCV_CACHE=0): every process compiles",
                     required=False)
    nbytes, files = cache.size()
    return Check("numba cache", True, f"{cache.cache_dir()} ({human(nbytes)} in {files} "
                 f"files under {cache.cache_root()}; `pureffcv cache clear` empties it)",
                 required=False)


CHECKS: List[Callable[[], Check]] = [
    check_python, check_ffcv, check_ffcv_extension, check_image_libraries, check_numba,
    check_numba_internals, check_numba_cache, check_torch, check_cuda_devices, check_cupy,
    check_lightning, check_no_torchvision, check_pillow,
]


def run_checks() -> List[Check]:
    """Every check in ``CHECKS``; one that crashes becomes a failed check, never an exception."""
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as exc:
            name = check.__name__.replace("check_", "")
            results.append(Check(name, False, f"check crashed: {type(exc).__name__}: {exc}"
                                 .splitlines()[0]))
    return results


def healthy(checks: List[Check]) -> bool:
    """True when every required check passed."""
    return all(check.ok or not check.required for check in checks)


def format_report(checks: List[Check]) -> str:
    """One line per check: status, name, detail, and the fix where it is not OK."""
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        fix = f"  -> {check.fix}" if check.fix and not check.ok else ""
        lines.append(f"{check.status:<4}  {check.name:<{width}}  {check.detail}{fix}")
    return "\n".join(lines)
