/*
 * call.c: the C API against the conformance service (any wslink server
 * that serves it: `wslink serve --conformance`, or Kitware's Python server
 * running tests/peers/python/conformance_server.py).
 *
 *   call --url ws://127.0.0.1:8080/ws [--secret S] [--generation 2|1]
 *   call --launch http://127.0.0.1:9000/paraview/ --app conf [--generation 2|1]
 *
 * Calls conformance.add, echoes a binary buffer through conformance.echo,
 * subscribes to a topic and has conformance.publish send three messages to
 * it, checks an error reply, and exits 0 when every check passed.
 *
 * Build (from the repository root, after cargo build -p wslink-c):
 *   cc -std=c11 -I crates/wslink-c/include crates/wslink-c/examples/c/call.c
 *      -L target/debug -lwslink_c -pthread -o call
 */
#define _GNU_SOURCE /* pthread_getname_np */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wslink.h"

#define TOPIC "c.example"
#define MESSAGES 3
#define BLOB 1000

static int failures = 0;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "call.c: FAILED: " __VA_ARGS__); \
            fprintf(stderr, "\n");                         \
            failures++;                                    \
        }                                                  \
    } while (0)

/* The conformance service's bytes(size, seed): byte i is (i * 31 + seed) % 251. */
static int is_pattern(const wslink_buffer *b, size_t size, unsigned seed) {
    if (b->len != size) return 0;
    for (size_t i = 0; i < size; i++) {
        if (b->data[i] != (uint8_t)((i * 31 + seed) % 251)) return 0;
    }
    return 1;
}

/* What the subscription callback saw, shared with the main thread. */
struct inbox {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int received;
    int good;
    int ended;
    char thread_name[32];
};

/* Runs on the subscription's library thread ("wslink-callback"). */
static void on_publish(void *user_data, const wslink_payload *message) {
    struct inbox *inbox = user_data;
    pthread_mutex_lock(&inbox->lock);
    if (message == NULL) {
        /* The end: the connection closed (wslink_last_error_message() says how). */
        inbox->ended = 1;
    } else {
        /* {"seq":N,"blob":{"$binary":0}} with buffers[0] = bytes(1000, N) */
        char want[32];
        snprintf(want, sizeof want, "\"seq\":%d", inbox->received);
        if (strstr(message->json, want) && strstr(message->json, "\"blob\":{\"$binary\":0}") &&
            message->buffer_count == 1 && is_pattern(&message->buffers[0], BLOB, (unsigned)inbox->received)) {
            inbox->good++;
        } else {
            fprintf(stderr, "call.c: unexpected message %d: %s\n", inbox->received, message->json);
        }
        inbox->received++;
        pthread_getname_np(pthread_self(), inbox->thread_name, sizeof inbox->thread_name);
    }
    pthread_cond_broadcast(&inbox->changed);
    pthread_mutex_unlock(&inbox->lock);
}

static void usage(void) {
    fprintf(stderr,
            "usage: call --url ws://HOST:PORT/ws [--secret S] [--generation 2|1]\n"
            "       call --launch http://HOST:PORT/ENDPOINT --app NAME [--generation 2|1]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *url = NULL, *launcher = NULL, *app = NULL;
    wslink_options options = {0}; /* zero: every default */
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--url")) url = argv[++i];
        else if (!strcmp(argv[i], "--secret")) options.secret = argv[++i];
        else if (!strcmp(argv[i], "--generation")) options.generation = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--launch")) launcher = argv[++i];
        else if (!strcmp(argv[i], "--app")) app = argv[++i];
        else usage();
    }
    if (!url == !launcher || (launcher && !app)) usage();
    options.connect_timeout_ms = 10000;
    options.call_timeout_ms = 20000;

    wslink_connection *conn = NULL;
    wslink_status status;
    if (launcher) {
        char request[256];
        snprintf(request, sizeof request, "{\"application\": \"%s\"}", app);
        char *answer = NULL;
        status = wslink_launch(launcher, request, &options, &conn, &answer);
        if (status == WSLINK_OK) {
            printf("launched: %s\n", answer);
            wslink_string_free(answer);
        }
    } else {
        status = wslink_connect(url, &options, &conn);
    }
    if (status != WSLINK_OK) {
        fprintf(stderr, "call.c: cannot connect: %s: %s\n", wslink_status_name(status), wslink_last_error_message());
        return 1;
    }
    printf("connected as %s (wslink %u.x)\n", wslink_connection_client_id(conn), wslink_connection_generation(conn));

    /* conformance.add: plain JSON both ways, integers exact past 2^53. */
    wslink_payload *result = NULL;
    status = wslink_call(conn, "conformance.add", "[2, 3]", NULL, 0, &result);
    CHECK(status == WSLINK_OK && !strcmp(result->json, "5"), "add(2, 3): %s %s", wslink_status_name(status),
          status == WSLINK_OK ? result->json : wslink_last_error_message());
    wslink_payload_free(result);
    status = wslink_call(conn, "conformance.add", "[9007199254740993, 1]", NULL, 0, &result);
    CHECK(status == WSLINK_OK && !strcmp(result->json, "9007199254740994"), "add(2^53 + 1, 1): %s",
          status == WSLINK_OK ? result->json : wslink_last_error_message());
    wslink_payload_free(result);

    /* conformance.echo: a buffer goes out as {"$binary": 0} and comes back so. */
    uint8_t *pixels = malloc(BLOB);
    for (size_t i = 0; i < BLOB; i++) pixels[i] = (uint8_t)((i * 31 + 7) % 251);
    wslink_buffer in = {pixels, BLOB};
    status = wslink_call(conn, "conformance.echo", "[{\"name\": \"pixels\", \"data\": {\"$binary\": 0}}]", &in, 1,
                         &result);
    free(pixels); /* copied by the call: ours to free at once */
    if (status == WSLINK_OK) {
        CHECK(!strcmp(result->json, "{\"name\":\"pixels\",\"data\":{\"$binary\":0}}"), "echo JSON: %s", result->json);
        CHECK(result->buffer_count == 1 && is_pattern(&result->buffers[0], BLOB, 7), "echo bytes differ");
        printf("echo: %s + %zu bytes\n", result->json, result->buffer_count ? result->buffers[0].len : 0);
    } else {
        CHECK(0, "echo: %s", wslink_last_error_message());
    }
    wslink_payload_free(result);

    /* A subscription, then three publishes on it. */
    struct inbox inbox = {.received = 0};
    pthread_mutex_init(&inbox.lock, NULL);
    pthread_cond_init(&inbox.changed, NULL);
    wslink_subscription *sub = NULL;
    status = wslink_subscribe(conn, TOPIC, on_publish, &inbox, &sub);
    CHECK(status == WSLINK_OK, "subscribe: %s", wslink_last_error_message());
    status = wslink_call(conn, "conformance.publish", "[\"" TOPIC "\", 3, 1000]", NULL, 0, &result);
    CHECK(status == WSLINK_OK && !strcmp(result->json, "3"), "publish: %s",
          status == WSLINK_OK ? result->json : wslink_last_error_message());
    wslink_payload_free(result);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&inbox.lock);
    while (inbox.received < MESSAGES) {
        if (pthread_cond_timedwait(&inbox.changed, &inbox.lock, &deadline) != 0) break;
    }
    int received = inbox.received, good = inbox.good;
    char thread_name[32];
    memcpy(thread_name, inbox.thread_name, sizeof thread_name);
    pthread_mutex_unlock(&inbox.lock);
    CHECK(received == MESSAGES && good == MESSAGES, "publishes: %d received, %d as expected", received, good);
    printf("received %d publishes on %s, on thread %s\n", received, TOPIC, thread_name);

    /* An error reply: a code, a message, the exception as JSON data. */
    status = wslink_call(conn, "conformance.fail", "[\"on purpose\"]", NULL, 0, &result);
    CHECK(status == WSLINK_ERR_RPC && result == NULL, "fail: %s", wslink_status_name(status));
    CHECK(wslink_last_error_code() == -32001, "fail: code %lld", (long long)wslink_last_error_code());
    CHECK(strstr(wslink_last_error_message(), "on purpose") != NULL, "fail: message %s", wslink_last_error_message());
    printf("error reply: %s (code %lld)\n", wslink_last_error_message(), (long long)wslink_last_error_code());

    /* NULL is an error, not a crash. */
    CHECK(wslink_call(conn, NULL, "[]", NULL, 0, NULL) == WSLINK_ERR_INVALID_ARGUMENT, "NULL method accepted");

    wslink_close(conn);
    pthread_mutex_lock(&inbox.lock);
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    while (!inbox.ended) {
        if (pthread_cond_timedwait(&inbox.changed, &inbox.lock, &deadline) != 0) break;
    }
    int ended = inbox.ended;
    pthread_mutex_unlock(&inbox.lock);
    CHECK(ended, "the subscription's end was not reported after close");
    wslink_unsubscribe(sub); /* after this, inbox is ours again */
    pthread_cond_destroy(&inbox.changed);
    pthread_mutex_destroy(&inbox.lock);

    if (failures) {
        fprintf(stderr, "call.c: %d check(s) failed\n", failures);
        return 1;
    }
    printf("call.c: all checks passed\n");
    return 0;
}
