/* in progress */
#include "actors/src.h"
