/*
 * The error model: every code's category and transience, the category -> gRPC
 * status code table (checked against grpc_status_code's published numbers), the
 * context fields, and truncation of long messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "greeks/status.h"
#include "greeks/text.h"

static void test_codes_map_to_categories_and_transience(void **state) {
  (void)state;
  struct { gk_code code; gk_category category; bool transient; int grpc; } table[] = {
      {GK_OK, GK_CATEGORY_NONE, false, 0},                           /* OK */
      {GK_INVALID_ARGUMENT, GK_CATEGORY_VALIDATION, false, 3},       /* INVALID_ARGUMENT */
      {GK_RESOURCE_EXHAUSTED, GK_CATEGORY_RESOURCE, true, 8},        /* RESOURCE_EXHAUSTED */
      {GK_UNAVAILABLE, GK_CATEGORY_UNAVAILABLE, true, 14},           /* UNAVAILABLE */
      {GK_DEADLINE_EXCEEDED, GK_CATEGORY_TIMEOUT, true, 4},          /* DEADLINE_EXCEEDED */
      {GK_CANCELLED, GK_CATEGORY_CANCELLED, false, 1},               /* CANCELLED */
      {GK_INTERNAL, GK_CATEGORY_INTERNAL, false, 13},                /* INTERNAL */
      {GK_IO_ERROR, GK_CATEGORY_IO, false, 14},                      /* UNAVAILABLE */
      {GK_NOT_FOUND, GK_CATEGORY_NOT_FOUND, false, 5},               /* NOT_FOUND */
      {GK_ALREADY_EXISTS, GK_CATEGORY_ALREADY_EXISTS, false, 6},     /* ALREADY_EXISTS */
      {GK_FAILED_PRECONDITION, GK_CATEGORY_PRECONDITION, false, 9},  /* FAILED_PRECONDITION */
      {GK_ABORTED, GK_CATEGORY_CONFLICT, true, 10},                  /* ABORTED */
      {GK_DATA_LOSS, GK_CATEGORY_DATA_LOSS, false, 15},              /* DATA_LOSS */
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    gk_status s;
    assert_int_equal(gk_status_set(&s, table[i].code, "f", "v", 7, "message %d", 1), table[i].code);
    assert_int_equal(s.category, table[i].category);
    assert_int_equal(s.transient, table[i].transient);
    assert_int_equal(gk_status_grpc_code(&s), table[i].grpc);
    assert_int_equal(gk_category_grpc_code(table[i].category), table[i].grpc);
    assert_true(strlen(gk_code_name(table[i].code)) > 1);
  }
  /* Pricing failures are their own category, INTERNAL on the wire. */
  assert_int_equal(gk_category_grpc_code(GK_CATEGORY_PRICING), 13);
  assert_string_equal(gk_category_name(GK_CATEGORY_PRICING), "pricing");
  assert_int_equal(gk_status_grpc_code(NULL), 0);
}

static void test_context_and_truncation(void **state) {
  (void)state;
  gk_status s;
  gk_status_set(&s, GK_INVALID_ARGUMENT, "spot", "-1", 42, "spot = %s: must be > 0", "-1");
  assert_string_equal(s.field, "spot");
  assert_string_equal(s.value, "-1");
  assert_int_equal(s.index, 42);
  assert_string_equal(s.message, "spot = -1: must be > 0");
  gk_status_set_request_id(&s, "req-123");
  assert_string_equal(s.request_id, "req-123");
  char long_text[1000];
  memset(long_text, 'x', sizeof long_text - 1);
  long_text[sizeof long_text - 1] = '\0';
  gk_status_set(&s, GK_INTERNAL, long_text, long_text, GK_STATUS_NO_INDEX, "%s", long_text);
  assert_int_equal(strlen(s.message), sizeof s.message - 1);
  assert_int_equal(strlen(s.field), sizeof s.field - 1);
  gk_status_clear(&s);
  assert_int_equal(s.code, GK_OK);
  assert_int_equal(s.index, GK_STATUS_NO_INDEX);
  assert_string_equal(s.request_id, "");
  assert_int_equal(gk_status_set(NULL, GK_UNAVAILABLE, NULL, NULL, 0, "ignored"), GK_UNAVAILABLE);
}

/* A value or message cut inside a client's character stays UTF-8: a gRPC
 * client decoded a cut "é" as Latin-1, the whole message with it. */
static void test_a_cut_inside_a_character_stays_text(void **state) {
  (void)state;
  char accents[601] = "";
  for (int i = 0; i < 300; i++) strcat(accents, "\xc3\xa9"); /* é */
  gk_status s;
  gk_status_set(&s, GK_INVALID_ARGUMENT, "underlying", accents, GK_STATUS_NO_INDEX, "x%s", accents);
  /* value[64] holds 31 whole é and half of the 32nd; message[256] after the 'x' too */
  assert_true(gk_text_is_clean((const uint8_t *)s.value, strlen(s.value)));
  assert_true(gk_text_is_clean((const uint8_t *)s.message, strlen(s.message)));
  assert_int_equal(strlen(s.value), sizeof s.value - 1);
  assert_int_equal(s.value[sizeof s.value - 2], '?');
  assert_memory_equal(s.value, accents, sizeof s.value - 2);

  char mixed[] = "a\xff" "b\xc3" "c\xe2\x82\xac" "d\xe2\x82";
  assert_int_equal(gk_text_make_clean(mixed), 4);
  assert_string_equal(mixed, "a?b?c\xe2\x82\xac" "d??");
  char clean[] = "\xf0\x9f\x98\x80 ok";
  assert_int_equal(gk_text_make_clean(clean), 0);
  assert_string_equal(clean, "\xf0\x9f\x98\x80 ok");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codes_map_to_categories_and_transience),
      cmocka_unit_test(test_context_and_truncation),
      cmocka_unit_test(test_a_cut_inside_a_character_stays_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
