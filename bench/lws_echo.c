/* A minimal libwebsockets echo server for the benchmark suite, written the
 * way the library asks (its minimal-ws-server-echo example's shape): a
 * received piece is queued, writability is requested, and each
 * SERVER_WRITEABLE callback writes one queued piece with LWS_PRE bytes of
 * headroom. UTF-8 is validated, as duplex does.
 *
 * usage: lws_echo PORT [CERT KEY]   (prints "listening PORT"; with CERT and KEY, wss://)
 * build: cc -O2 -o lws_echo lws_echo.c $(pkg-config --cflags --libs libwebsockets) */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct piece {
    struct piece *next;
    size_t len;
    int flags; /* lws_write_ws_flags() of the piece */
    unsigned char buf[];
} piece;

typedef struct session {
    piece *head, *tail;
} session;

static volatile sig_atomic_t stop;

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    session *s = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        s->head = s->tail = NULL;
        break;
    case LWS_CALLBACK_RECEIVE: {
        piece *p = malloc(sizeof *p + LWS_PRE + len);
        if (!p) return -1;
        p->next = NULL;
        p->len = len;
        p->flags = lws_write_ws_flags(lws_frame_is_binary(wsi) ? LWS_WRITE_BINARY : LWS_WRITE_TEXT,
                                      lws_is_first_fragment(wsi), lws_is_final_fragment(wsi));
        memcpy(p->buf + LWS_PRE, in, len);
        if (s->tail)
            s->tail->next = p;
        else
            s->head = p;
        s->tail = p;
        lws_callback_on_writable(wsi);
        break;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        piece *p = s->head;
        if (!p) break;
        if (lws_write(wsi, p->buf + LWS_PRE, p->len, (enum lws_write_protocol)p->flags) < (int)p->len)
            return -1;
        s->head = p->next;
        if (!s->head) s->tail = NULL;
        free(p);
        if (s->head) lws_callback_on_writable(wsi);
        break;
    }
    case LWS_CALLBACK_CLOSED:
        while (s->head) {
            piece *p = s->head;
            s->head = p->next;
            free(p);
        }
        s->tail = NULL;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"echo", cb, sizeof(session), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_sig(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = argc > 1 ? atoi(argv[1]) : 9003;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.fd_limit_per_thread = 1 + 65536;
    if (argc > 3) { /* wss:// */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = argv[2];
        info.ssl_private_key_filepath = argv[3];
    }
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "lws_echo: cannot create the context\n");
        return 1;
    }
    printf("listening %d\n", info.port);
    fflush(stdout);
    while (!stop && lws_service(ctx, 0) >= 0) {
    }
    lws_context_destroy(ctx);
    return 0;
}
