/* main.c - mock-llm: flags in, server out. */
#include "mllm_server.h"

int main(int argc, char **argv)
{
    static mllm_config_t cfg;
    mllm_config_defaults(&cfg);
    int rc = mllm_config_parse(&cfg, argc, argv);
    if (rc == 1)
        return 0;
    if (rc)
        return rc;
    return mllm_server_run(&cfg);
}
