#include "annx/index/id_map.h"

#include <algorithm>
#include <limits>
#include <unordered_set>

#include "annx/common/error.h"

namespace annx {

std::optional<slot_t> IdMap::find(idx_t id) const {
  if (identity_) {
    if (id >= 0 && static_cast<size_t>(id) < ids_.size()) return static_cast<slot_t>(id);
    return std::nullopt;
  }
  auto it = map_.find(id);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

idx_t IdMap::next_id() const {
  return max_id_ == std::numeric_limits<idx_t>::max() ? max_id_ : max_id_ + 1;
}

void IdMap::check_new(const idx_t* ids, size_t n) const {
  ANNX_CHECK(InvalidArgument, ids_.size() + n <= size_t{0xffffffffu} - 1,
             "an index holds at most 4294967294 vectors; adding ", n, " to ", ids_.size(),
             " would exceed that");
  if (!ids) {
    // Ids max_id_+1 .. INT64_MAX are free (2^63 of them for an empty index).
    constexpr idx_t kMax = std::numeric_limits<idx_t>::max();
    const uint64_t room =
        max_id_ == kMax ? 0 : static_cast<uint64_t>(kMax) - static_cast<uint64_t>(max_id_ + 1) + 1;
    ANNX_CHECK(InvalidArgument, n <= room, "adding ", n,
               " vectors without ids would need ids beyond the int64 range (the largest id in "
               "use is ",
               max_id_, "); pass ids= explicitly");
    return;
  }
  std::unordered_set<idx_t> seen;
  seen.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    ANNX_CHECK(InvalidArgument, ids[i] >= 0, "ids must be >= 0; got ", ids[i], " at position ", i);
    ANNX_CHECK(InvalidArgument, seen.insert(ids[i]).second, "duplicate id ", ids[i],
               " in ids (position ", i, ")");
    ANNX_CHECK(InvalidArgument, !contains(ids[i]), "id ", ids[i],
               " is already in the index (remove it first to replace it)");
  }
}

void IdMap::append(const idx_t* ids, size_t n) {
  auto& v = ids_.mut();
  const size_t base = v.size();
  v.reserve(base + n);
  for (size_t i = 0; i < n; ++i) {
    const idx_t id = ids ? ids[i] : max_id_ + 1 + static_cast<idx_t>(i);
    v.push_back(id);
  }
  for (size_t i = base; i < v.size(); ++i) max_id_ = std::max(max_id_, v[i]);
  live_ += n;
  if (identity_) {
    for (size_t i = base; i < v.size(); ++i)
      if (v[i] != static_cast<idx_t>(i)) {
        identity_ = false;
        break;
      }
    if (!identity_) build_map();
  } else {
    for (size_t i = base; i < v.size(); ++i) map_.emplace(v[i], static_cast<slot_t>(i));
  }
}

std::vector<slot_t> IdMap::slots_of(const idx_t* ids, size_t n, bool allow_repeats) const {
  std::vector<slot_t> out(n);
  std::unordered_set<idx_t> seen;
  if (!allow_repeats) seen.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto s = find(ids[i]);
    ANNX_CHECK(InvalidArgument, s.has_value(), "unknown id ", ids[i], " (position ", i,
               "): not in the index");
    ANNX_CHECK(InvalidArgument, allow_repeats || seen.insert(ids[i]).second, "duplicate id ",
               ids[i], " in ids (position ", i, ")");
    out[i] = *s;
  }
  return out;
}

void IdMap::move_last_into(slot_t to) {
  auto& v = ids_.mut();
  const slot_t last = static_cast<slot_t>(v.size() - 1);
  const idx_t removed = v[to];
  if (identity_ && to != last) {
    identity_ = false;
    build_map();
  }
  if (!identity_) {
    map_.erase(removed);
    if (to != last) map_[v[last]] = to;
  }
  v[to] = v[last];
  v.pop_back();
  --live_;
}

void IdMap::erase_slot(slot_t s) {
  auto& v = ids_.mut();
  const idx_t removed = v[s];
  if (removed == kNoId) return;
  v[s] = kNoId;
  --live_;
  if (identity_) {
    identity_ = false;
    build_map();
  } else {
    map_.erase(removed);
  }
}

void IdMap::assign_slot(slot_t s, idx_t id) {
  auto& v = ids_.mut();
  if (v[s] != kNoId)
    map_.erase(v[s]);
  else
    ++live_;
  v[s] = id;
  max_id_ = std::max(max_id_, id);
  identity_ = false;  // a map exists whenever there are or were holes
  map_[id] = s;
}

std::vector<slot_t> IdMap::allowed_slots(const IdFilter& f) const {
  std::vector<slot_t> out;
  const size_t n = ids_.size();
  if (f.is_mask()) {
    const idx_t* ids = ids_.data();
    for (size_t s = 0; s < n; ++s) {
      const idx_t id = ids[s];
      if (static_cast<size_t>(id) < f.mask_len && f.mask[id]) out.push_back(static_cast<slot_t>(s));
    }
    return out;
  }
  out.reserve(std::min(f.n_ids, n));
  for (size_t i = 0; i < f.n_ids; ++i)
    if (auto s = find(f.ids[i])) out.push_back(*s);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void IdMap::load(SharedArray<idx_t> ids, idx_t max_id, bool allow_holes) {
  ids_ = std::move(ids);
  max_id_ = max_id;
  identity_ = true;
  live_ = 0;
  const idx_t* p = ids_.data();
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (allow_holes && p[i] == kNoId) {
      identity_ = false;
      continue;
    }
    ++live_;
    if (p[i] < 0 || p[i] > max_id_) {
      throw FormatError("corrupt index: id " + std::to_string(p[i]) + " at slot " +
                        std::to_string(i) + " is out of range");
    }
    if (p[i] != static_cast<idx_t>(i)) identity_ = false;
  }
  map_.clear();
  if (!identity_) {
    build_map();
    if (map_.size() != live_) throw FormatError("corrupt index: duplicate ids");
  }
}

void IdMap::build_map() {
  map_.clear();
  map_.reserve(ids_.size());
  const idx_t* p = ids_.data();
  for (size_t i = 0; i < ids_.size(); ++i)
    if (p[i] != kNoId) map_.emplace(p[i], static_cast<slot_t>(i));
}

}  // namespace annx
