// Aliases (Erlang/OTP 24's alias/0, unalias/1): a reference through which messages reach a process
// only while the process keeps the alias active. Functions are thread-safe; alias() and unalias()
// act on the calling process and must be called from one.
//
// A reply sent through an alias after the receiver gave up waiting (a call that timed out) is
// dropped when it arrives instead of sitting in the mailbox forever: this is how gen_server's
// call keeps late replies out of the caller's mailbox.
#pragma once

#include <type_traits>
#include <utility>

#include "athanor/runtime/message.h"
#include "athanor/term/pid.h"
#include "athanor/term/ref.h"
#include "athanor/term/term.h"

namespace athanor {

// Makes a new reference and activates it as an alias of the calling process; returns it. The
// reference names its owner (as OTP's do), so another node can send through it (ALIAS_SEND).
ref alias();
// The process an alias made by alias() belongs to, whether or not it is still active; the null
// pid for any other reference (those made by make_ref() or monitor(), or another node's).
pid alias_owner(const ref& alias) noexcept;
// Activates an existing reference (one this process made, such as a monitor's) as an alias.
// Such an alias works within this node; only one made by alias() can be reached from others.
void alias(const ref& r);
// Deactivates an alias; returns false if it was not active. Messages sent through it from now on
// are dropped on arrival.
bool unalias(const ref& alias);

namespace detail {
bool deliver_aliased(pid owner, const ref& alias, envelope* e) noexcept;
}  // namespace detail

// Sends `msg` to `owner` through `alias`: it is received as a plain message if the alias is active
// when it arrives, and dropped otherwise. Returns false if `owner` has ended (msg dropped).
template <class T>
bool send_alias(pid owner, const ref& alias, T&& msg) {
  return detail::deliver_aliased(owner, alias, detail::make_envelope<std::remove_cvref_t<T>>(false, std::forward<T>(msg)));
}

// Erlang's `Alias ! Msg`: sends `msg` through `alias` to whichever process made it, on this node
// (an alias() reference: the same as send_alias(alias_owner(alias), alias, msg)) or on another
// (carried there by the distribution layer, ALIAS_SEND; gen_server replies to an Erlang caller
// this way). Received only while the alias is active; dropped otherwise, and for a reference that
// names no owner. Returns false if the message was certainly dropped here (a local owner that has
// ended, or no owner); throws send_refused (remote.h) when the connection refuses it, as send() does.
bool send_alias(const ref& alias, term msg);

}  // namespace athanor
