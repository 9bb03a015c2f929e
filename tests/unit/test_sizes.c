/* Budgets of what every idle connection costs (bench/README.md, "Memory
 * per idle connection"): a size assertion, not a timing, so a field added
 * to a per-connection structure fails here until the budget is raised on
 * purpose, with the bench figure re-measured. */
#include <duplex/conn.h>

#include "server/internal.h"
#include "test.h"

/* dx_conn's own bytes before the inline user data (its frame parser,
 * output queue, reassembly pointer and UTF-8 state; the reassembly sizes
 * live in the block they describe). */
#define CONN_BUDGET 128
/* The server's per-connection record, which lives in that inline data:
 * with dx_conn, the one 200-byte allocation (a 208-byte malloc chunk) that
 * is most of the bench's 0.21 KiB per idle connection on epoll. 8 bytes
 * more on either would cost a 224-byte chunk. */
#define SERVER_CONN_BUDGET 72

static void check_conn(void) {
    dx_conn_config cfg = {0};
    cfg.role = DX_ROLE_SERVER;
    dx_conn *c = dx_conn_new(&cfg, 1);
    CHECK(c != NULL);
    size_t own = (size_t)((char *)dx_conn_extra(c) - (char *)c);
    printf("dx_conn: %zu bytes (budget %d)\n", own, CONN_BUDGET);
    CHECK(own <= CONN_BUDGET);
    dx_conn_free(c);
}

static void check_server_conn(void) {
    printf("dx_server_conn: %zu bytes (budget %d)\n", sizeof(dx_server_conn), SERVER_CONN_BUDGET);
    CHECK(sizeof(dx_server_conn) <= SERVER_CONN_BUDGET);
}

int main(void) {
    RUN(check_conn);
    RUN(check_server_conn);
    return TEST_DONE();
}
