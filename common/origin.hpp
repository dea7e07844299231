#pragma once

// A web origin as the browser front ends name the page they serve:
// https://host[:port], nothing after the port (no path, query, user or
// trailing slash). korttid checks it for auth.token and for the origin a
// signature is made for; kortti-webeid checks it before asking korttid.

#include <string_view>

namespace kortti {

// Error(invalid_params) naming the rule the origin breaks.
void check_web_origin(std::string_view origin);

}  // namespace kortti
