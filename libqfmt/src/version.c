#include "qfmt.h"

unsigned qfmt_version_number(void) { return QFMT_VERSION_NUMBER; }
const char *qfmt_version_string(void) { return QFMT_VERSION_STRING; }
