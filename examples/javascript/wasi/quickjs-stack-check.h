/*
 * Force-included into QuickJS's C sources when they are built for WASI
 * (scripts/build-components.sh passes `-include` this file).
 *
 * QuickJS turns its stack limit off when `__wasi__` is defined, so deep
 * recursion in a tool's JavaScript would exhaust the wasm stack and trap
 * instead of throwing a RangeError. QuickJS measures its stack through the
 * C shadow stack, which works the same on WASI: this header includes the C
 * library headers the sources need while `__wasi__` is defined (wasi-libc
 * requires it), then undefines it so QuickJS keeps its limit. The build
 * also defines EMSCRIPTEN, which keeps QuickJS off threads and atomics.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fenv.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#undef __wasi__
