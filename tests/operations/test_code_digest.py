"""operations.code_digest: the digest of an entry's function sees the ``@overload`` and
``@intrinsic`` implementations it calls, not only plain functions and dispatchers."""
from numba import njit, types
from numba.extending import intrinsic, overload

from operations.code_digest import function_digest


def _caller(callee):
    @njit
    def kernel(x):
        return callee(x)
    return kernel


def _overloaded(offset):
    def stub(x):  # the same code for every offset: only the implementation differs
        raise NotImplementedError

    @overload(stub)
    def implementation(x):
        return lambda x: x + offset

    return stub


def _intrinsic(offset):
    @intrinsic
    def plus(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.add(args[0], context.get_constant(types.int64, offset))
        return types.int64(types.int64), codegen

    return plus


def test_the_digest_follows_overload_implementations():
    one, two = _overloaded(1), _overloaded(2)
    assert _caller(one)(5) == 6 and _caller(two)(5) == 7  # they compile and differ
    assert function_digest(_caller(one)) != function_digest(_caller(two))
    assert function_digest(_caller(one)) == function_digest(_caller(one))


def test_the_digest_follows_intrinsic_definitions():
    one, two = _intrinsic(1), _intrinsic(2)
    assert _caller(one)(5) == 6 and _caller(two)(5) == 7
    assert function_digest(_caller(one)) != function_digest(_caller(two))
