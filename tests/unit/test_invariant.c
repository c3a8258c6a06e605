/*
 * test_invariant.c - ET_ASSERT: a broken internal invariant stops a Debug or
 * sanitizer build at once, with a log line naming where; a kept one costs
 * nothing visible. Release builds compile the check out.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stddef.h>

#include "buf.h"
#include "invariant.h"
#include "json/writer.h"

Test(invariant, a_kept_invariant_is_silent)
{
    int x = 1;

    ET_ASSERT(x == 1);
}

#ifdef ET_ASSERTS
Test(invariant, a_broken_invariant_aborts, .signal = SIGABRT)
{
    int x = 1;

    ET_ASSERT(x == 2);
}

/* Writer nesting: closing an object right after a key, before its value. */
Test(invariant, writer_closing_after_a_key_aborts, .signal = SIGABRT)
{
    struct buf out = BUF_INIT;
    struct jw w;

    jw_init(&w, &out);
    jw_object_begin(&w);
    jw_key(&w, "k");
    jw_object_end(&w);
}

/* Buffer ownership: a buffer whose bytes were taken behind its back. */
Test(invariant, a_buffer_with_bytes_but_no_capacity_aborts, .signal = SIGABRT)
{
    static char stolen[4] = "abc";
    struct buf b = BUF_INIT;

    b.data = stolen;
    b.len = 3;
    buf_putc(&b, 'd');
}
#endif
