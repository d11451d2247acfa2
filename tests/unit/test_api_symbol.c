/* Tests for runtime/api_symbol.c: a provider's symbol alphabet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dagrun/task.h>

static void test_api_symbol_alphabets(void **state)
{
    (void)state;
    const char *binance = "A-Z0-9._-", *yahoo = "A-Za-z0-9.^=_-", *cg = "a-z0-9._-";
    assert_true(dr_symbol_ok("BTCUSDT", binance, 20));
    assert_true(dr_symbol_ok("A-B_C.D", binance, 20));
    assert_false(dr_symbol_ok("btcusdt", binance, 20));
    assert_false(dr_symbol_ok("BTC USDT", binance, 20));
    assert_false(dr_symbol_ok("BTC/USDT", binance, 20));
    assert_false(dr_symbol_ok("\xe8\xbf\x99\xe6\x98\xaf" "456", binance, 20));   /* non-ASCII */
    assert_false(dr_symbol_ok("ABCDEFGHIJKLMNOPQRSTU", binance, 20));          /* 21 long */
    assert_false(dr_symbol_ok("", binance, 20));
    assert_false(dr_symbol_ok(NULL, binance, 20));
    assert_true(dr_symbol_ok("^GSPC", yahoo, 32));
    assert_true(dr_symbol_ok("EURUSD=X", yahoo, 32));
    assert_true(dr_symbol_ok("WSU.DE", yahoo, 32));
    assert_true(dr_symbol_ok("BRK-B", yahoo, 32));
    assert_false(dr_symbol_ok("AA PL", yahoo, 32));
    assert_false(dr_symbol_ok("a&b", yahoo, 32));
    assert_true(dr_symbol_ok("usd-coin", cg, 100));
    assert_false(dr_symbol_ok("Bitcoin", cg, 100));
    assert_false(dr_symbol_ok("bit%20coin", cg, 100));
    /* A '-' first stands for itself too. */
    assert_true(dr_symbol_ok("-", "-a", 5));
    assert_false(dr_symbol_ok("b", "-a", 5));
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_api_symbol_alphabets),
    };
    return cmocka_run_group_tests_name("api_symbol", t, NULL, NULL);
}
