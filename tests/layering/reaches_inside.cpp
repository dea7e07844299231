// Must not compile: ipc/ has no business with pkcs11/'s insides. The
// layering test compiles this file and expects the guard's message.
#include "pkcs11/token.hpp"

int main() { return 0; }
