/* config_fuzz.c - aims at the YAML config loader (s3s_config_load_string). */
#include "proxy/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s3s_config *cfg = NULL;
    char why[256];
    if (s3s_is_ok(s3s_config_load_string((const char *)data, size, "fuzz.yaml", &cfg, why,
                                         sizeof(why)))) {
        s3s_config_destroy(cfg);
    }
    return 0;
}
