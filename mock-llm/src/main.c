/* main.c - mock-llm: flags in, server out. */
#include "mllm_server.h"

#include <malloc.h>

int main(int argc, char **argv)
{
    static mllm_config_t cfg;
    /* Buffers of 64 KiB and more (a backed-up stream's pending output, the shared
     * formatting buffers after a huge Responses stream) are mapped on their own and go
     * back to the kernel when freed. glibc's default threshold moves up to the largest
     * buffer freed so far (up to 32 MiB), after which such buffers come from the heap
     * and their pages may stay resident for good: the server's RSS after one big stream
     * then depended on allocation order (seen: +0.3 to +7 MiB after a 108 MiB stream,
     * mockllm_review_shared_buffers_trimmed). A fixed threshold makes it exact. */
    mallopt(M_MMAP_THRESHOLD, 64 << 10);
    mllm_config_defaults(&cfg);
    int rc = mllm_config_parse(&cfg, argc, argv);
    if (rc == 1)
        return 0;
    if (rc)
        return rc;
    return mllm_server_run(&cfg);
}
