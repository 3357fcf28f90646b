// External int64 ids <-> internal slots, owned by every index (no IDMap wrapper).
//
// Slots are 0..size()-1. Structures that compact on removal (Flat) keep them dense;
// graph structures (HNSW) leave holes instead: a hole's id is kNoId and the slot is
// reused by a later add. While every id equals its slot (the common case of adds
// without explicit ids and no removals) no hash table is kept at all.
#pragma once

#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "annx/common/shared_array.h"
#include "annx/common/types.h"

namespace annx {

/// Which external ids a search may return: either a list of allowed ids or a boolean
/// mask indexed by id (mask[id] != 0 allows id).
struct IdFilter {
  const idx_t* ids = nullptr;
  size_t n_ids = 0;
  const uint8_t* mask = nullptr;
  size_t mask_len = 0;
  bool is_mask() const { return mask != nullptr; }
};

class IdMap {
 public:
  static constexpr idx_t kNoId = -1;  // the id of a hole

  /// Number of slots, holes included.
  size_t size() const { return ids_.size(); }
  /// Number of live ids (slots that are not holes).
  size_t live() const { return live_; }
  idx_t id(slot_t s) const { return ids_[s]; }
  const idx_t* ids() const { return ids_.data(); }
  /// Largest id ever used (-1 if none); add() without ids continues after it.
  idx_t max_id() const { return max_id_; }
  /// Next id handed out by add() without ids (saturates at INT64_MAX when the id space
  /// is used up; add() without ids then raises).
  idx_t next_id() const;

  std::optional<slot_t> find(idx_t id) const;
  bool contains(idx_t id) const { return find(id).has_value(); }

  /// Throws InvalidArgument if any id is negative, repeated within `ids`, or already
  /// present. Nothing is modified.
  void check_new(const idx_t* ids, size_t n) const;
  /// Appends n ids (sequential from next_id() when ids == nullptr). Call check_new first.
  void append(const idx_t* ids, size_t n);
  /// Slot of each id; throws InvalidArgument naming the first unknown id (and the first
  /// repeated one unless allow_repeats).
  std::vector<slot_t> slots_of(const idx_t* ids, size_t n, bool allow_repeats = false) const;
  /// Moves the id of slot `from` into slot `to` and drops the last slot (swap-remove).
  void move_last_into(slot_t to);
  /// Turns slot `s` into a hole (its id is forgotten).
  void erase_slot(slot_t s);
  /// Gives hole `s` the new id `id` (checked with check_new).
  void assign_slot(slot_t s, idx_t id);

  /// Sorted list of slots the filter allows (ids not in the index are ignored).
  std::vector<slot_t> allowed_slots(const IdFilter& f) const;

  /// Persistence: the raw id array (slot order) and rebuild after load.
  const SharedArray<idx_t>& array() const { return ids_; }
  /// `allow_holes`: kNoId entries are accepted (structures that keep holes).
  void load(SharedArray<idx_t> ids, idx_t max_id, bool allow_holes = false);

 private:
  void build_map();
  SharedArray<idx_t> ids_;
  idx_t max_id_ = -1;
  size_t live_ = 0;
  bool identity_ = true;                   // ids_[s] == s for every slot
  std::unordered_map<idx_t, slot_t> map_;  // only when !identity_
};

}  // namespace annx
