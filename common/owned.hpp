#pragma once

// The one spelling of an owning pointer to a C library's object: the
// library's release function is part of the type, so every owner is a
// unique_ptr of one word, with no function pointer stored beside it and no
// deleter struct written per type. Where an object is owned, it is owned
// from the call that allocates it: a manual free is skipped by any
// exception that passes before it.
//
// The aliases live next to the libraries: common/openssl.hpp for OpenSSL,
// signature/xml_document.hpp for libxml2 and xmlsec (common/ links OpenSSL
// only). A release function that is a macro (OPENSSL_free, sk_X509_pop_free)
// or a variable (xmlFree) is wrapped in an inline function there, since only
// a function can be a template argument.

#include <memory>

namespace kortti {

template <auto Free>
struct FreeWith {
  template <class T>
  void operator()(T* p) const noexcept {
    // unique_ptr never passes null; a deleter called by hand might, and not
    // every C library's free accepts it.
    if (p != nullptr) Free(p);
  }
};

template <class T, auto Free>
using Owned = std::unique_ptr<T, FreeWith<Free>>;

}  // namespace kortti
