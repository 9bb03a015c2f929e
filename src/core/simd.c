/* One switch for every SIMD path: DX_NO_SIMD=1 in the environment forces
 * the portable code, so tests can check both paths on one machine. */
#include <stdlib.h>

int dx__simd_disabled(void);

int dx__simd_disabled(void) {
    static int cached = -1;
    if (cached < 0) {
        const char *e = getenv("DX_NO_SIMD");
        cached = e && *e && *e != '0';
    }
    return cached;
}
