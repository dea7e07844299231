#pragma once

// Whether this build runs under AddressSanitizer or ThreadSanitizer. GCC
// says so with __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__; Clang 14 defines
// neither and answers __has_feature instead.

#if defined(__SANITIZE_ADDRESS__)
#define KORTTI_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KORTTI_ASAN_BUILD 1
#endif
#endif
#ifndef KORTTI_ASAN_BUILD
#define KORTTI_ASAN_BUILD 0
#endif

#if defined(__SANITIZE_THREAD__)
#define KORTTI_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KORTTI_TSAN_BUILD 1
#endif
#endif
#ifndef KORTTI_TSAN_BUILD
#define KORTTI_TSAN_BUILD 0
#endif
