/*
 * check.c: what tests/c/run.sh proves of the C API against a live server
 * running the conformance service (ours, or Kitware's Python server with
 * tests/peers/python/conformance_server.py), in one generation:
 *
 *   check_c --url ws://127.0.0.1:8080/ws --secret S --generation 2|1
 *   check_c --url wss://127.0.0.1:8443/ws --secret S --ca cert.pem
 *
 *  - a wrong secret is refused with WSLINK_ERR_AUTH and code -32000;
 *  - JSON both ways (integers exact past 2^53, keyword arguments);
 *  - binary both ways: two buffers echoed, a blob made by the server, a
 *    buffer the server digests;
 *  - 100 publishes received through a subscription, each sequence number
 *    in order and each blob intact, none dropped;
 *  - an unknown method is WSLINK_ERR_RPC with code -32601, an exception
 *    WSLINK_ERR_RPC with -32001;
 *  - close ends the subscription (its NULL message), and everything the
 *    library returned is freed, so that a leak checker sees no leak.
 *
 * Prints "check.c: all checks passed" and exits 0, or names each failed
 * check on stderr and exits 1. The examples (crates/wslink-c/examples)
 * show the API; this is the test.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wslink.h"

#define TOPIC "c.check"
#define PUBLISHES 100
#define PUBLISH_SIZE 512

static int failures = 0;

#define CHECK(cond, ...)                                      \
    do {                                                      \
        if (!(cond)) {                                        \
            fprintf(stderr, "check.c: FAILED: " __VA_ARGS__); \
            fprintf(stderr, "\n");                            \
            failures++;                                       \
        }                                                     \
    } while (0)

/* The conformance service's bytes(size, seed): byte i is (i * 31 + seed) % 251. */
static uint8_t *pattern(size_t size, unsigned seed) {
    uint8_t *p = malloc(size ? size : 1);
    if (!p) abort();
    for (size_t i = 0; i < size; i++) p[i] = (uint8_t)((i * 31 + seed) % 251);
    return p;
}

static int is_pattern(const wslink_buffer *b, size_t size, unsigned seed) {
    if (b->len != size) return 0;
    for (size_t i = 0; i < size; i++) {
        if (b->data[i] != (uint8_t)((i * 31 + seed) % 251)) return 0;
    }
    return 1;
}

/* The JSON of a result, or why there is none, for failure messages. */
static const char *said(wslink_status status, const wslink_payload *result) {
    return status == WSLINK_OK ? result->json : wslink_last_error_message();
}

/* What the subscription's callback saw; the main thread reads it under the lock. */
struct inbox {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int received;
    int seq[PUBLISHES];  /* the sequence number of each message, in arrival order */
    int intact[PUBLISHES];
    int ended;
};

static void on_publish(void *user_data, const wslink_payload *message) {
    struct inbox *inbox = user_data;
    pthread_mutex_lock(&inbox->lock);
    if (message == NULL) {
        inbox->ended = 1;
    } else {
        int n = inbox->received++;
        if (n < PUBLISHES) {
            /* {"seq":N,"blob":{"$binary":0}}: N read as the server sent it, then
               the whole JSON and the blob compared with what N implies. */
            const char *at = strstr(message->json, "\"seq\":");
            int seq = at ? atoi(at + 6) : -1;
            char want[64];
            snprintf(want, sizeof want, "{\"seq\":%d,\"blob\":{\"$binary\":0}}", seq);
            inbox->seq[n] = seq;
            inbox->intact[n] = seq >= 0 && !strcmp(message->json, want) && message->buffer_count == 1 &&
                               is_pattern(&message->buffers[0], PUBLISH_SIZE, (unsigned)seq);
        }
    }
    pthread_cond_broadcast(&inbox->changed);
    pthread_mutex_unlock(&inbox->lock);
}

/* Waits (10 s at most) until the callback saw `count` messages or the end. */
static void wait_inbox(struct inbox *inbox, int count, int for_end) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&inbox->lock);
    while (for_end ? !inbox->ended : inbox->received < count) {
        if (pthread_cond_timedwait(&inbox->changed, &inbox->lock, &deadline) != 0) break;
    }
    pthread_mutex_unlock(&inbox->lock);
}

static void usage(void) {
    fprintf(stderr, "usage: check_c --url ws[s]://HOST:PORT/ws --secret S [--generation 2|1] [--ca PEM]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *url = NULL;
    wslink_options options = {0};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url")) url = argv[i + 1];
        else if (!strcmp(argv[i], "--secret")) options.secret = argv[i + 1];
        else if (!strcmp(argv[i], "--ca")) options.ca_file = argv[i + 1];
        else if (!strcmp(argv[i], "--generation")) options.generation = (uint32_t)atoi(argv[i + 1]);
        else usage();
    }
    if (!url || !options.secret || argc % 2 == 0) usage();
    options.connect_timeout_ms = 10000;
    options.call_timeout_ms = 20000;

    /* A wrong secret: the server answers the hello with an error, which
       wslink.h documents as WSLINK_ERR_AUTH with the server's code -32000. */
    wslink_options wrong = options;
    wrong.secret = "not-the-secret";
    wslink_connection *refused = NULL;
    wslink_status status = wslink_connect(url, &wrong, &refused);
    CHECK(status == WSLINK_ERR_AUTH && refused == NULL, "wrong secret: %s (%s)", wslink_status_name(status),
          wslink_last_error_message());
    CHECK(wslink_last_error_code() == -32000, "wrong secret: code %lld", (long long)wslink_last_error_code());
    printf("wrong secret: %s, code %lld: %s\n", wslink_status_name(status), (long long)wslink_last_error_code(),
           wslink_last_error_message());
    wslink_close(refused); /* NULL unless the check above failed */

    wslink_connection *conn = NULL;
    status = wslink_connect(url, &options, &conn);
    if (status != WSLINK_OK) {
        fprintf(stderr, "check.c: cannot connect: %s: %s\n", wslink_status_name(status), wslink_last_error_message());
        return 1;
    }
    CHECK(wslink_connection_generation(conn) == (options.generation ? options.generation : 2), "generation %u",
          wslink_connection_generation(conn));

    /* JSON both ways. */
    wslink_payload *result = NULL;
    status = wslink_call(conn, "conformance.add", "[2, 3]", NULL, 0, &result);
    CHECK(status == WSLINK_OK && !strcmp(result->json, "5"), "add(2, 3): %s", said(status, result));
    wslink_payload_free(result);
    status = wslink_call(conn, "conformance.add", "[9007199254740993, 1]", NULL, 0, &result);
    CHECK(status == WSLINK_OK && !strcmp(result->json, "9007199254740994"), "add(2^53 + 1, 1): %s",
          said(status, result));
    wslink_payload_free(result);
    status = wslink_call_ex(conn, "conformance.kwargs", "[1, \"two\"]", "{\"scale\": 2.5}", NULL, 0, 0, &result);
    CHECK(status == WSLINK_OK && !strcmp(result->json, "{\"args\":[1,\"two\"],\"kwargs\":{\"scale\":2.5}}"),
          "kwargs: %s", said(status, result));
    wslink_payload_free(result);

    /* Binary both ways: two buffers, nested, out and back. */
    uint8_t *small = pattern(1000, 7), *large = pattern(100000, 9);
    wslink_buffer in[2] = {{small, 1000}, {large, 100000}};
    status = wslink_call(conn, "conformance.echo", "[{\"a\": {\"$binary\": 0}, \"b\": [1, {\"$binary\": 1}]}]", in, 2,
                         &result);
    free(small); /* the call copied them */
    free(large);
    CHECK(status == WSLINK_OK && !strcmp(result->json, "{\"a\":{\"$binary\":0},\"b\":[1,{\"$binary\":1}]}"),
          "echo: %s", said(status, result));
    CHECK(status == WSLINK_OK && result->buffer_count == 2 && is_pattern(&result->buffers[0], 1000, 7) &&
              is_pattern(&result->buffers[1], 100000, 9),
          "echo: the buffers came back different");
    wslink_payload_free(result);

    /* Binary made by the server... */
    status = wslink_call(conn, "conformance.blob", "[300000, 5]", NULL, 0, &result);
    CHECK(status == WSLINK_OK && !strcmp(result->json, "{\"size\":300000,\"blob\":{\"$binary\":0}}") &&
              result->buffer_count == 1 && is_pattern(&result->buffers[0], 300000, 5),
          "blob(300000, 5): %s", said(status, result));
    wslink_payload_free(result);

    /* ...and binary read by it: it answers the length and the byte sum. */
    uint8_t *upload = pattern(200000, 3);
    unsigned long long sum = 0;
    for (size_t i = 0; i < 200000; i++) sum += upload[i];
    wslink_buffer up = {upload, 200000};
    status = wslink_call(conn, "conformance.digest", "[{\"$binary\": 0}]", &up, 1, &result);
    free(upload);
    char want[64];
    snprintf(want, sizeof want, "{\"len\":200000,\"sum\":%llu}", sum);
    CHECK(status == WSLINK_OK && !strcmp(result->json, want), "digest: %s, expected %s", said(status, result), want);
    wslink_payload_free(result);

    /* 100 publishes through a subscription, in order. */
    struct inbox *inbox = calloc(1, sizeof *inbox);
    if (!inbox) abort();
    pthread_mutex_init(&inbox->lock, NULL);
    pthread_cond_init(&inbox->changed, NULL);
    wslink_subscription *sub = NULL;
    status = wslink_subscribe(conn, TOPIC, on_publish, inbox, &sub);
    CHECK(status == WSLINK_OK, "subscribe: %s", wslink_last_error_message());
    char args[64];
    snprintf(args, sizeof args, "[\"%s\", %d, %d]", TOPIC, PUBLISHES, PUBLISH_SIZE);
    status = wslink_call(conn, "conformance.publish", args, NULL, 0, &result);
    CHECK(status == WSLINK_OK && atoi(result->json) == PUBLISHES, "publish: %s", said(status, result));
    wslink_payload_free(result);
    wait_inbox(inbox, PUBLISHES, 0);
    pthread_mutex_lock(&inbox->lock);
    int received = inbox->received, in_order = 0, intact = 0;
    for (int i = 0; i < PUBLISHES && i < received; i++) {
        if (inbox->seq[i] == i) in_order++;
        else if (in_order == i) fprintf(stderr, "check.c: message %d has sequence number %d\n", i, inbox->seq[i]);
        intact += inbox->intact[i];
    }
    pthread_mutex_unlock(&inbox->lock);
    CHECK(received == PUBLISHES, "publishes: %d received of %d", received, PUBLISHES);
    CHECK(in_order == PUBLISHES, "publishes: %d of %d with the sequence number of their place", in_order, PUBLISHES);
    CHECK(intact == PUBLISHES, "publishes: %d of %d as sent (JSON and blob)", intact, PUBLISHES);
    CHECK(wslink_subscription_dropped(sub) == 0, "publishes: %llu dropped",
          (unsigned long long)wslink_subscription_dropped(sub));
    printf("publishes: %d received, %d in order, %d intact\n", received, in_order, intact);

    /* Errors: an unknown method, then an exception. */
    result = NULL;
    status = wslink_call(conn, "conformance.no_such_method", "[]", NULL, 0, &result);
    CHECK(status == WSLINK_ERR_RPC && result == NULL, "unknown method: %s", wslink_status_name(status));
    CHECK(wslink_last_error_code() == -32601, "unknown method: code %lld", (long long)wslink_last_error_code());
    printf("unknown method: %s, code %lld: %s\n", wslink_status_name(status), (long long)wslink_last_error_code(),
           wslink_last_error_message());
    status = wslink_call(conn, "conformance.fail", "[\"on purpose\"]", NULL, 0, &result);
    CHECK(status == WSLINK_ERR_RPC && wslink_last_error_code() == -32001, "exception: %s, code %lld",
          wslink_status_name(status), (long long)wslink_last_error_code());
    CHECK(strstr(wslink_last_error_message(), "on purpose") != NULL, "exception: message %s",
          wslink_last_error_message());
    CHECK(wslink_last_error_data() && strstr(wslink_last_error_data(), "on purpose"), "exception: data %s",
          wslink_last_error_data() ? wslink_last_error_data() : "NULL");

    /* The connection still works after errors. */
    status = wslink_call(conn, "conformance.add", "[1, 1]", NULL, 0, &result);
    CHECK(status == WSLINK_OK && !strcmp(result->json, "2"), "add after errors: %s", said(status, result));
    wslink_payload_free(result);

    wslink_close(conn);
    wait_inbox(inbox, 0, 1);
    pthread_mutex_lock(&inbox->lock);
    int ended = inbox->ended;
    pthread_mutex_unlock(&inbox->lock);
    CHECK(ended, "close: the subscription's end was not reported");
    wslink_unsubscribe(sub); /* from here on the callback cannot run: inbox is ours */
    pthread_cond_destroy(&inbox->changed);
    pthread_mutex_destroy(&inbox->lock);
    free(inbox);

    if (failures) {
        fprintf(stderr, "check.c: %d check(s) failed\n", failures);
        return 1;
    }
    printf("check.c: all checks passed\n");
    return 0;
}
