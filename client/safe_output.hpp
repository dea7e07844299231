#pragma once

// Internal to client/ (docs/architecture.md, Layering); include client/client.hpp.
#if !defined(KORTTI_COMPONENT_CLIENT) && !defined(KORTTI_WHITE_BOX)
#error "client/safe_output.hpp is internal to client/; include client/client.hpp"
#endif

namespace kortti::cli {

// From here on, what kortti prints through std::cout and std::cerr reaches
// the terminal with its control characters (but line breaks and tabs) and
// invalid UTF-8 replaced by U+FFFD. Most of it comes from korttid, and
// through korttid from cards and documents: a card's label or a reference
// in a signed document could otherwise retitle the terminal, clear it, or
// make one line read as another.
void make_output_safe();

}  // namespace kortti::cli
