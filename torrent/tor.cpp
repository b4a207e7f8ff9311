// gv_tor over libtorrent-rasterbar 2.0: the contract is in tor.h.
//
// Every extern "C" entry point is a try block whose catch turns whatever
// libtorrent or the standard library threw into a GV_E* code and a reason.
// Nothing allocated here is handed out except through gv_tor_create()'s
// malloc'd buffer, which gv_tor_bytes_free() releases.
//
// A torrent's life, as seen by this file:
//
//   gv_tor_add(.torrent) ── path check ──> libtorrent: checking / downloading
//   gv_tor_add(target)   ──> upload mode in state_dir/.meta/<hash>/,
//                            every file at priority 0 (peers kept)
//                            ── metadata_received ── path check
//                                 │ fails                     │ passes
//                                 v                           v
//                         paused, "error" state      (torrent_checked, if
//                         .meta/<hash> deleted       libtorrent was checking)
//                                                    move_storage() to the
//                                                    save path, files wanted
//                                                    and upload mode off
//                                                    behind it ── storage_moved:
//                                                    download on the same peer
//                                                    connections
//   piece_finished x N or T ms ──> save_resume_data ──> <hash>.resume (atomic)
//   gv_tor_remove ──> removed from the session, resume file deleted

#include "err.h"
extern "C" {
#include "json.h" // gv_hex_encode, gv_hex_decode: no extern "C" of its own
}
#include "fsutil.h" // gv_write_atomic
#include "tor.h"

#include <cctype>
#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <vector>

#include <libtorrent/alert_types.hpp>
#include <libtorrent/bdecode.hpp>
#include <libtorrent/bencode.hpp>
#include <libtorrent/create_torrent.hpp>
#include <libtorrent/error_code.hpp>
#include <libtorrent/extensions.hpp>
#include <libtorrent/extensions/smart_ban.hpp>
#include <libtorrent/extensions/ut_metadata.hpp>
#include <libtorrent/extensions/ut_pex.hpp>
#include <libtorrent/ip_filter.hpp>
#include <libtorrent/magnet_uri.hpp>
#include <libtorrent/peer_connection_handle.hpp>
#include <libtorrent/read_resume_data.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/session_params.hpp>
#include <libtorrent/settings_pack.hpp>
#include <libtorrent/torrent_info.hpp>
#include <libtorrent/write_resume_data.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

// Resume files are ours, but a corrupt one must not exhaust memory.
constexpr off_t kResumeMax = 256 << 20;
// Depth of a v2 file tree we walk before calling the torrent hostile.
constexpr int kTreeDepth = 64;

struct entry {
  lt::torrent_handle h;
  lt::info_hash_t ih;
  std::string save_path; // realpath of the caller's save path
  bool need_check = false; // a target: paths are checked at metadata
  // A target's private directory (state_dir/.meta/<hash>), libtorrent's
  // save path until the metadata passed the check and the storage moved
  // to save_path; "" after that.
  std::string meta_dir;
  bool moving = false; // checked; its storage is not in save_path yet
  bool move_at_check = false; // moving, once libtorrent's check ends
  bool failed = false;     // our own error (a refused path)
  std::string error;
  int unsaved = 0; // pieces verified since the last save request
  int pieces_seen = 0; // piece_finished alerts since the add
  clock_type::time_point first_unsaved;
  bool save_pending = false;
  std::string file_error; // the first file error's reason, for status
  // Whether this torrent's latest alert was a ban, and of whom: libtorrent
  // bans the sender of a failed piece just before posting hash_failed.
  bool last_was_ban = false;
  lt::tcp::endpoint last_ban;
};

// Ends a finished download's connections to upload-only peers (seeds),
// which libtorrent's close_redundant_connections would do; the session
// turns that off (see gv_tor_new) so that a target's metadata phase,
// upload-only too, keeps its connection. Only a torrent that went through
// "downloading" is touched: never a share, never a target in its metadata
// phase (downloading_metadata, then finished with no file wanted). Runs on
// libtorrent's thread; the disconnects happen in tick(), outside any loop
// of libtorrent's over the torrent's connections, as its own do.
struct close_seeds final : lt::torrent_plugin {
  std::vector<lt::peer_connection_handle> peers;
  bool downloading = false, due = false;

  std::shared_ptr<lt::peer_plugin>
  new_connection(lt::peer_connection_handle const &p) override {
    peers.erase(std::remove_if(peers.begin(), peers.end(),
                               [](lt::peer_connection_handle const &q) {
                                 return !q.native_handle();
                               }),
                peers.end());
    peers.push_back(p);
    return nullptr;
  }

  void on_state(lt::torrent_status::state_t st) override {
    if (st == lt::torrent_status::downloading) {
      downloading = true;
    } else if (downloading && (st == lt::torrent_status::finished ||
                               st == lt::torrent_status::seeding)) {
      downloading = false;
      due = true;
    }
  }

  void tick() override {
    if (!due)
      return;
    due = false;
    lt::error_code const why = lt::errors::torrent_finished;
    std::vector<lt::peer_connection_handle> seeds;
    for (auto const &p : peers)
      if (p.native_handle() && !p.is_disconnecting() && p.upload_only() &&
          p.can_disconnect(why))
        seeds.push_back(p);
    for (auto &p : seeds)
      p.disconnect(why, lt::operation_t::bittorrent);
  }
};

} // namespace

struct gv_tor {
  std::unique_ptr<lt::session> ses;
  std::string state_dir;
  std::vector<std::unique_ptr<entry>> torrents;
  std::deque<gv_tor_event> pending;
  // Targets removed from libtorrent in their metadata phase whose
  // torrent_removed_alert is still to come: their private directory is
  // deleted again then (libtorrent's disk thread may have written into it
  // since).
  struct retired {
    lt::info_hash_t ih;
    std::string dir;
  };
  std::vector<retired> retired;
};

namespace {

int fail(gv_why *why, int err, const std::string &s) {
  return gv_fail(why, err, "%s", s.c_str());
}

// The catch-all of every entry point.
int caught(gv_why *why) {
  try {
    throw;
  } catch (std::bad_alloc const &) {
    return fail(why, GV_ENOMEM, "out of memory");
  } catch (lt::system_error const &e) {
    return fail(why, GV_ESTATE, std::string("libtorrent: ") + e.what());
  } catch (std::exception const &e) {
    return fail(why, GV_ESTATE, std::string("libtorrent: ") + e.what());
  } catch (...) {
    return fail(why, GV_ESTATE, "libtorrent: unknown exception");
  }
}

void to_ih(lt::info_hash_t const &in, gv_tor_ih *out) {
  memset(out, 0, sizeof *out);
  if (in.has_v1()) {
    memcpy(out->v1, in.v1.data(), 20);
    out->has_v1 = 1;
  }
  if (in.has_v2()) {
    memcpy(out->v2, in.v2.data(), 32);
    out->has_v2 = 1;
  }
}

lt::info_hash_t from_ih(gv_tor_ih const &in) {
  lt::info_hash_t r;
  if (in.has_v1)
    r.v1 = lt::sha1_hash(reinterpret_cast<char const *>(in.v1));
  if (in.has_v2)
    r.v2 = lt::sha256_hash(reinterpret_cast<char const *>(in.v2));
  return r;
}

bool same(lt::info_hash_t const &a, lt::info_hash_t const &b) {
  return (a.has_v1() && b.has_v1() && a.v1 == b.v1) ||
         (a.has_v2() && b.has_v2() && a.v2 == b.v2);
}

entry *find(gv_tor *t, lt::info_hash_t const &ih) {
  for (auto &e : t->torrents)
    if (same(e->ih, ih))
      return e.get();
  return nullptr;
}

entry *find(gv_tor *t, lt::torrent_handle const &h) {
  for (auto &e : t->torrents)
    if (e->h == h)
      return e.get();
  return nullptr;
}

std::string hex(char const *p, size_t n) {
  std::string s(n * 2, '0');
  gv_tor_hex(reinterpret_cast<uint8_t const *>(p), n, &s[0]);
  s.resize(n * 2);
  return s;
}

// <state>/<v1 hex>.resume, or <v2 hex>.resume for a v2-only torrent.
std::string resume_name(lt::info_hash_t const &ih, bool v2) {
  if (v2)
    return hex(ih.v2.data(), 32) + ".resume";
  return hex(ih.v1.data(), 20) + ".resume";
}

// The private directory of a target's metadata phase: under the state
// dir, named by its v1 hash if it has one, else its v2 hash.
std::string meta_dir(gv_tor *t, lt::info_hash_t const &ih) {
  return t->state_dir + "/.meta/" +
         (ih.has_v1() ? hex(ih.v1.data(), 20) : hex(ih.v2.data(), 32));
}

// Deletes dir and what is in it (symlinks themselves, never what they
// point to), then .meta if that left it empty. Errors are ignored: the
// directory is ours, and the next session start clears .meta.
void remove_meta(std::string const &dir) {
  if (dir.empty())
    return;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  rmdir(dir.substr(0, dir.rfind('/')).c_str());
}

std::string primary_name(lt::info_hash_t const &ih) {
  return resume_name(ih, !ih.has_v1());
}

// --- Path checks ----------------------------------------------------------

// One path element of a torrent: refused unless it names a plain entry
// inside its directory, exactly as written.
bool bad_element(lt::string_view s, std::string &why) {
  if (s.empty())
    why = "an empty path element";
  else if (s == "." || s == "..")
    why = "a '" + std::string(s) + "' path element";
  else if (s.find('\0') != lt::string_view::npos)
    why = "a NUL in a file name";
  else if (s.find('/') != lt::string_view::npos)
    why = "a '/' in a file name (absolute or nested path): '" +
          std::string(s) + "'";
  else
    return false;
  return true;
}

struct path_check {
  std::string root;               // realpath of the save path
  std::vector<std::string> files; // relative paths, for the disk check
  std::string why;
};

bool check_list(lt::bdecode_node const &list, path_check &pc) {
  if (list.type() != lt::bdecode_node::list_t || list.list_size() == 0) {
    pc.why = "a file path that is not a non-empty list";
    return false;
  }
  for (int i = 0; i < list.list_size(); ++i) {
    lt::bdecode_node el = list.list_at(i);
    if (el.type() != lt::bdecode_node::string_t) {
      pc.why = "a path element that is not a string";
      return false;
    }
    if (bad_element(el.string_value(), pc.why))
      return false;
  }
  return true;
}

// BEP 47: a symlink's target is a list of elements, relative to the root.
bool check_symlink(lt::bdecode_node const &d, path_check &pc) {
  lt::bdecode_node sl = d.dict_find("symlink path");
  if (!sl)
    return true;
  if (!check_list(sl, pc)) {
    pc.why = "symlink target with " + pc.why;
    return false;
  }
  return true;
}

bool check_tree(lt::bdecode_node const &dir, int depth, path_check &pc) {
  if (dir.type() != lt::bdecode_node::dict_t || depth > kTreeDepth) {
    pc.why = "a malformed or too deep file tree";
    return false;
  }
  for (int i = 0; i < dir.dict_size(); ++i) {
    auto kv = dir.dict_at_node(i);
    lt::string_view key = kv.first.string_value();
    if (key.empty()) { // a leaf: {"": {length, pieces root, attr...}}
      if (kv.second.type() != lt::bdecode_node::dict_t) {
        pc.why = "a malformed file tree leaf";
        return false;
      }
      if (!check_symlink(kv.second, pc))
        return false;
      continue;
    }
    if (bad_element(key, pc.why))
      return false;
    if (!check_tree(kv.second, depth + 1, pc))
      return false;
  }
  return true;
}

// The first filter, on the raw bytes: the name, the v1 file list and the
// v2 file tree, with their .utf-8 variants, and symlink targets. libtorrent
// sanitises names silently ("..", "/" and NUL become something else), so
// only the raw bytes show that a torrent tried to escape; the paths
// libtorrent will write are checked after it (check_files).
bool check_info_node(lt::bdecode_node const &info, path_check &pc) {
  if (info.type() != lt::bdecode_node::dict_t) {
    pc.why = "no info dictionary";
    return false;
  }
  bool named = false;
  for (char const *k : {"name", "name.utf-8"}) {
    lt::bdecode_node n = info.dict_find(k);
    if (!n)
      continue;
    if (n.type() != lt::bdecode_node::string_t) {
      pc.why = std::string("a non-string ") + k;
      return false;
    }
    if (bad_element(n.string_value(), pc.why)) {
      pc.why = "a torrent name with " + pc.why;
      return false;
    }
    named = true;
  }
  if (!named) {
    pc.why = "a torrent without a name";
    return false;
  }
  lt::bdecode_node files = info.dict_find_list("files");
  for (int i = 0; files && i < files.list_size(); ++i) {
    lt::bdecode_node f = files.list_at(i);
    if (f.type() != lt::bdecode_node::dict_t) {
      pc.why = "a file entry that is not a dictionary";
      return false;
    }
    for (char const *k : {"path", "path.utf-8"}) {
      lt::bdecode_node p = f.dict_find(k);
      if (p && !check_list(p, pc))
        return false;
    }
    if (!check_symlink(f, pc))
      return false;
  }
  lt::bdecode_node tree = info.dict_find_dict("file tree");
  if (tree && !check_tree(tree, 0, pc))
    return false;
  if (!files && !tree && !check_symlink(info, pc))
    return false;
  return true;
}

// One path as libtorrent will join it to the save path: relative, and
// every element a plain name.
bool check_rel(std::string const &rel, path_check &pc) {
  if (rel.empty() || rel[0] == '/') {
    pc.why = "an absolute or empty path: '" + rel + "'";
    return false;
  }
  size_t pos = 0;
  for (;;) {
    size_t next = rel.find('/', pos);
    if (next == std::string::npos)
      next = rel.size();
    if (bad_element(lt::string_view(rel).substr(pos, next - pos), pc.why)) {
      pc.why += " in '" + rel + "'";
      return false;
    }
    if (next == rel.size())
      break;
    pos = next + 1;
  }
  pc.files.push_back(rel);
  return true;
}

// The paths libtorrent will write, as it parsed them: every file but pad
// files (never written) and every symlink target, both relative to the
// save path.
bool check_files(lt::file_storage const &fs, path_check &pc) {
  for (lt::file_index_t i : fs.file_range()) {
    lt::file_flags_t fl = fs.file_flags(i);
    if (fl & lt::file_storage::flag_pad_file)
      continue;
    if (!check_rel(fs.file_path(i), pc))
      return false;
    if ((fl & lt::file_storage::flag_symlink) &&
        !check_rel(fs.symlink(i), pc)) {
      pc.why = "symlink target with " + pc.why;
      return false;
    }
  }
  return true;
}

// Each file's longest prefix that exists on disk must resolve (symlinks
// followed) inside the save path: a symlink planted there cannot redirect
// a write.
bool check_disk(path_check &pc) {
  for (auto const &rel : pc.files) {
    std::string p = pc.root, deepest = pc.root;
    size_t pos = 0;
    while (pos <= rel.size()) {
      size_t next = rel.find('/', pos);
      if (next == std::string::npos)
        next = rel.size();
      p += "/" + rel.substr(pos, next - pos);
      struct stat st;
      if (lstat(p.c_str(), &st) != 0)
        break;
      deepest = p;
      pos = next + 1;
    }
    char *real = realpath(deepest.c_str(), nullptr);
    if (!real) {
      pc.why = "'" + rel + "' is a dangling symlink in the save path";
      return false;
    }
    std::string r(real);
    free(real);
    if (r != pc.root && r.compare(0, pc.root.size() + 1, pc.root + "/") != 0) {
      pc.why = "'" + rel + "' resolves outside the save path, to " + r;
      return false;
    }
  }
  return true;
}

// The whole check of a parsed torrent against the save path root: its raw
// info dict, then the paths libtorrent made of it, then the disk.
int check_ti(lt::torrent_info const &ti, std::string const &root, gv_why *why) {
  lt::error_code ec;
  lt::bdecode_node info = lt::bdecode(ti.info_section(), ec);
  if (ec)
    return fail(why, GV_EFIELD, "info dictionary: " + ec.message());
  path_check pc;
  pc.root = root;
  if (!check_info_node(info, pc) || !check_files(ti.files(), pc) ||
      !check_disk(pc))
    return fail(why, GV_EFIELD, "refused: torrent has " + pc.why);
  return 0;
}

// A .torrent's bytes: parsed by libtorrent into *out, then checked.
int check_torrent(lt::span<char const> buf, std::string const &root,
                  std::shared_ptr<lt::torrent_info> &out, gv_why *why) {
  lt::error_code ec;
  lt::bdecode_node n = lt::bdecode(buf, ec);
  if (ec)
    return fail(why, GV_EFIELD, "not a .torrent: " + ec.message());
  if (n.type() != lt::bdecode_node::dict_t)
    return fail(why, GV_EFIELD, "not a .torrent: not a dictionary");
  path_check pc;
  if (!check_info_node(n.dict_find_dict("info"), pc))
    return fail(why, GV_EFIELD, "refused: torrent has " + pc.why);
  auto ti = std::make_shared<lt::torrent_info>(n, ec);
  if (ec)
    return fail(why, GV_EFIELD, "not a .torrent: " + ec.message());
  int rc = check_ti(*ti, root, why);
  if (rc == 0)
    out = std::move(ti);
  return rc;
}

// --- Resume files ------------------------------------------------------------

// Reads <state>/<name> if it exists: 1 and *atp on success, 0 if absent.
int load_resume(gv_tor *t, std::string const &name, lt::add_torrent_params &atp,
                gv_why *why) {
  std::string path = t->state_dir + "/" + name;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : fail(why, -errno, "open " + path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = -errno;
    close(fd);
    return fail(why, err, "fstat " + path + ": " + strerror(-err));
  }
  if (st.st_size > kResumeMax) {
    close(fd);
    return fail(why, GV_ETOOBIG, path + ": resume file too large");
  }
  std::vector<char> buf(size_t(st.st_size));
  size_t off = 0;
  while (off < buf.size()) {
    ssize_t n = read(fd, buf.data() + off, buf.size() - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    off += size_t(n);
  }
  close(fd);
  lt::error_code ec;
  atp = lt::read_resume_data(lt::span<char const>(buf.data(), long(off)), ec);
  if (ec)
    return fail(why, GV_EFIELD, path + ": " + ec.message());
  return 1;
}

void request_save(entry &e) {
  if (e.save_pending || e.failed)
    return;
  e.h.save_resume_data(lt::torrent_handle::save_info_dict);
  e.save_pending = true;
  e.unsaved = 0;
}

// Writes one save_resume_data_alert's params, atomically; returns 0 or the
// error.
int save_resume(gv_tor *t, lt::add_torrent_params const &params,
                std::string &why) {
  std::vector<char> buf = lt::write_resume_data_buf(params);
  lt::info_hash_t const &ih = params.info_hashes;
  std::string name = primary_name(ih);
  gv_why w;
  int rc = gv_write_atomic((t->state_dir + "/" + name).c_str(), buf.data(),
                           buf.size(), &w);
  if (rc < 0)
    why = w.text;
  if (rc == 0 && ih.has_v1() && ih.has_v2()) {
    std::string alias = t->state_dir + "/" + resume_name(ih, true);
    if (symlink(name.c_str(), alias.c_str()) != 0 && errno != EEXIST) {
      why = "symlink " + alias + ": " + strerror(errno);
      rc = -errno;
    }
  }
  return rc;
}

// --- Events ------------------------------------------------------------------

gv_tor_event &push(gv_tor *t, gv_tor_ev_type type, lt::info_hash_t const &ih) {
  t->pending.emplace_back();
  gv_tor_event &ev = t->pending.back();
  memset(&ev, 0, sizeof ev);
  ev.type = type;
  to_ih(ih, &ev.ih);
  return ev;
}

void set_reason(gv_tor_event &ev, std::string const &s) {
  snprintf(ev.reason, sizeof ev.reason, "%s", s.c_str());
}

void set_peer(gv_tor_event &ev, lt::tcp::endpoint const &ep) {
  size_t n = ep.size() < sizeof ev.peer ? ep.size() : sizeof ev.peer;
  memcpy(&ev.peer, ep.data(), n);
  ev.has_peer = 1;
}

// An error_code as -errno when it is one, with "disk full" spelled out.
int map_error(lt::error_code const &ec, std::string &reason) {
  if (ec == boost::system::errc::no_space_on_device) {
    reason = "disk full: " + reason + ec.message();
    return -ENOSPC;
  }
  reason += ec.message();
  if (ec.category() == boost::system::system_category() ||
      ec.category() == boost::system::generic_category())
    return -ec.value();
  return GV_ESTATE;
}

// Whether a file error ec under path is the filesystem being full.
// libtorrent writes through mmap: a write into a full filesystem faults,
// and the error it reports is then EFAULT, EIO or EFBIG as often as
// ENOSPC, whichever write failed first. Only those errors are taken for a
// full disk, and only when the filesystem says it has no block left for
// us: f_bfree for root (who may write the reserved blocks), f_bavail for
// anyone else. EACCES and every other error keep their own name.
bool disk_full(std::string const &path, lt::error_code const &ec) {
  if (ec.category() != boost::system::system_category() &&
      ec.category() != boost::system::generic_category())
    return false;
  int v = ec.value();
  if (v == ENOSPC)
    return true;
  if (v != EFAULT && v != EIO && v != EFBIG)
    return false;
  struct statvfs st;
  if (statvfs(path.c_str(), &st) != 0)
    return false;
  return (geteuid() == 0 ? st.f_bfree : st.f_bavail) == 0;
}

int pieces_done(entry &e) {
  return e.h.status(lt::status_flags_t{}).num_pieces;
}

int pieces_total(entry &e) {
  auto ti = e.h.torrent_file();
  return ti ? ti->num_pieces() : 0;
}

// A target whose metadata passed the check: libtorrent made what it made
// (empty files, directories, BEP 47 symlinks) in e.meta_dir, wrote no
// piece there (upload mode, every file at priority 0), and moves those to
// the caller's save path, paths already checked. A file already in the
// save path is kept and checked against the torrent (dont_replace), as an
// add into a directory that holds it would be. Then every file is wanted
// and upload mode ends; libtorrent's disk thread runs the move as a fence
// and the new file priorities after it, and only then does libtorrent
// make the pieces wanted, so no piece is asked for or written before the
// storage is in the save path. (Wanting the files once storage_moved is
// polled would be too late: the check of a kept file can end first, and
// with nothing wanted libtorrent would call the torrent finished.) The
// peer connections stay up throughout (close_redundant_connections is
// off), so the download starts on them without a new connect.
void start_move(entry &e) {
  e.move_at_check = false;
  e.h.move_storage(e.save_path, lt::move_flags_t::dont_replace);
  auto ti = e.h.torrent_file();
  int n = ti ? ti->num_files() : 0;
  e.h.prioritize_files(std::vector<lt::download_priority_t>(
      size_t(n), lt::default_priority));
  e.h.unset_flags(lt::torrent_flags::upload_mode);
}

// The storage is in the save path: the private directory goes.
void on_moved(gv_tor *t, entry &e) {
  e.moving = false;
  remove_meta(e.meta_dir);
  e.meta_dir.clear();
  push(t, GV_TOR_EV_METADATA, e.ih);
}

// A refused or unmovable target: paused where it is, its private
// directory deleted (again when the torrent is removed: see
// gv_tor::retired), and an event that says why.
void meta_failed(gv_tor *t, entry &e, int rc, std::string const &why) {
  e.moving = e.move_at_check = false;
  e.h.pause();
  remove_meta(e.meta_dir);
  e.failed = true;
  e.error = why;
  gv_tor_event &ev = push(t, GV_TOR_EV_TORRENT_ERROR, e.ih);
  ev.err = rc;
  set_reason(ev, e.error);
}

void on_metadata(gv_tor *t, entry &e) {
  e.ih = e.h.info_hashes();
  if (!e.need_check)
    return;
  e.need_check = false;
  auto ti = e.h.torrent_file();
  gv_why why;
  int rc = ti ? check_ti(*ti, e.save_path, &why)
              : fail(&why, GV_EFIELD, "no metadata");
  if (rc < 0) {
    meta_failed(t, e, rc, why.text);
    return;
  }
  // libtorrent checks the new metadata against the (private) storage
  // first; a move before that check ended would race it: the check's end
  // would call the torrent finished after the move, or skip the check of
  // a file kept in the save path. torrent_checked ends the wait.
  e.moving = true;
  lt::torrent_status st = e.h.status(lt::status_flags_t{});
  if (st.state == lt::torrent_status::checking_resume_data ||
      st.state == lt::torrent_status::checking_files)
    e.move_at_check = true;
  else
    start_move(e);
}

void dispatch(gv_tor *t, std::vector<lt::alert *> const &alerts, size_t i) {
  lt::alert *a = alerts[i];
  if (auto *r = lt::alert_cast<lt::torrent_removed_alert>(a)) {
    for (auto it = t->retired.begin(); it != t->retired.end(); ++it) {
      if (!same(it->ih, r->info_hashes))
        continue;
      remove_meta(it->dir);
      t->retired.erase(it);
      break;
    }
    push(t, GV_TOR_EV_REMOVED, r->info_hashes);
    return;
  }
  if (auto *s = lt::alert_cast<lt::save_resume_data_alert>(a)) {
    entry *e = find(t, s->handle);
    if (!e) // removed since it was asked for: its resume file stays deleted
      return;
    e->save_pending = false;
    std::string why;
    int rc = save_resume(t, s->params, why);
    gv_tor_event &ev = push(t, GV_TOR_EV_RESUME_SAVED, s->params.info_hashes);
    ev.err = rc;
    set_reason(ev, why);
    return;
  }
  auto *ta = dynamic_cast<lt::torrent_alert *>(a);
  if (!ta)
    return;
  entry *e = find(t, ta->handle);
  if (!e)
    return;
  // A target before its check, while its storage moves, or refused by the
  // check, lives in its private directory with every file at priority 0:
  // libtorrent calls it finished there, which it is not. Only its add, its
  // metadata and the end of its move are news.
  if ((e->need_check || !e->meta_dir.empty()) &&
      !lt::alert_cast<lt::metadata_received_alert>(a) &&
      !lt::alert_cast<lt::add_torrent_alert>(a) &&
      !(e->moving && (lt::alert_cast<lt::storage_moved_alert>(a) ||
                      lt::alert_cast<lt::storage_moved_failed_alert>(a) ||
                      lt::alert_cast<lt::torrent_checked_alert>(a))))
    return;
  bool was_ban = e->last_was_ban;
  e->last_was_ban = false;
  if (auto *f = lt::alert_cast<lt::save_resume_data_failed_alert>(a)) {
    e->save_pending = false;
    gv_tor_event &ev = push(t, GV_TOR_EV_RESUME_SAVED, e->ih);
    std::string reason = "save resume data: ";
    ev.err = map_error(f->error, reason);
    set_reason(ev, reason);
  } else if (auto *ad = lt::alert_cast<lt::add_torrent_alert>(a)) {
    gv_tor_event &ev = push(t, GV_TOR_EV_ADDED, e->ih);
    if (ad->error) {
      std::string reason;
      ev.err = map_error(ad->error, reason);
      set_reason(ev, reason);
    }
  } else if (lt::alert_cast<lt::metadata_received_alert>(a)) {
    on_metadata(t, *e);
  } else if (lt::alert_cast<lt::torrent_checked_alert>(a)) {
    if (e->move_at_check)
      start_move(*e);
  } else if (lt::alert_cast<lt::storage_moved_alert>(a)) {
    on_moved(t, *e);
  } else if (auto *mf = lt::alert_cast<lt::storage_moved_failed_alert>(a)) {
    std::string reason = "moving the checked torrent into the save path: " +
                         std::string(mf->file_path()) + ": ";
    int rc = map_error(mf->error, reason);
    meta_failed(t, *e, rc, reason);
  } else if (auto *p = lt::alert_cast<lt::piece_finished_alert>(a)) {
    gv_tor_event &ev = push(t, GV_TOR_EV_PIECE, e->ih);
    ev.piece = uint32_t(static_cast<int>(p->piece_index));
    // libtorrent's count can lag its own alert; ours cannot.
    int have = pieces_done(*e);
    ev.pieces_done = ++e->pieces_seen > have ? e->pieces_seen : have;
    ev.pieces_total = pieces_total(*e);
    if (e->unsaved++ == 0)
      e->first_unsaved = clock_type::now();
  } else if (lt::alert_cast<lt::torrent_finished_alert>(a)) {
    push(t, GV_TOR_EV_FINISHED, e->ih);
    request_save(*e);
  } else if (auto *hf = lt::alert_cast<lt::hash_failed_alert>(a)) {
    gv_tor_event &ev = push(t, GV_TOR_EV_HASH_FAILED, e->ih);
    ev.piece = uint32_t(static_cast<int>(hf->piece_index));
    // The ban of the culprit, if any, is this torrent's alert just before
    // this one (libtorrent 2.0), or just after it (elsewhere in the batch).
    if (was_ban) {
      set_peer(ev, e->last_ban);
      ev.banned = 1;
    }
    for (size_t j = i + 1; !was_ban && j < alerts.size(); ++j) {
      auto *tj = dynamic_cast<lt::torrent_alert *>(alerts[j]);
      if (!tj || tj->handle != ta->handle)
        continue;
      if (auto *b = lt::alert_cast<lt::peer_ban_alert>(alerts[j])) {
        set_peer(ev, b->endpoint);
        ev.banned = 1;
      }
      if (lt::alert_cast<lt::peer_ban_alert>(alerts[j]) ||
          lt::alert_cast<lt::hash_failed_alert>(alerts[j]))
        break;
    }
  } else if (auto *b = lt::alert_cast<lt::peer_ban_alert>(a)) {
    gv_tor_event &ev = push(t, GV_TOR_EV_PEER_BANNED, e->ih);
    set_peer(ev, b->endpoint);
    ev.banned = 1;
    e->last_was_ban = true;
    e->last_ban = b->endpoint;
  } else if (auto *fe = lt::alert_cast<lt::file_error_alert>(a)) {
    gv_tor_event &ev = push(t, GV_TOR_EV_FILE_ERROR, e->ih);
    std::string reason = std::string(fe->filename()) + ": ";
    if (disk_full(e->save_path, fe->error)) { // "disk full: f: Bad address"
      reason = "disk full: " + reason + fe->error.message();
      ev.err = -ENOSPC;
    } else {
      ev.err = map_error(fe->error, reason);
    }
    set_reason(ev, reason);
    if (e->file_error.empty())
      e->file_error = reason;
    // libtorrent paused the torrent; record what was verified.
    request_save(*e);
  } else if (auto *te = lt::alert_cast<lt::torrent_error_alert>(a)) {
    gv_tor_event &ev = push(t, GV_TOR_EV_TORRENT_ERROR, e->ih);
    std::string reason = std::string(te->filename()) + ": ";
    ev.err = map_error(te->error, reason);
    set_reason(ev, reason);
  }
}

lt::tcp::endpoint endpoint_of(struct sockaddr const *sa) {
  if (sa->sa_family == AF_INET) {
    auto const *s = reinterpret_cast<struct sockaddr_in const *>(sa);
    return {lt::address_v4(ntohl(s->sin_addr.s_addr)), ntohs(s->sin_port)};
  }
  if (sa->sa_family == AF_INET6) {
    auto const *s = reinterpret_cast<struct sockaddr_in6 const *>(sa);
    lt::address_v6::bytes_type b;
    memcpy(b.data(), &s->sin6_addr, 16);
    return {lt::address_v6(b, s->sin6_scope_id), ntohs(s->sin6_port)};
  }
  throw std::invalid_argument("not an IPv4 or IPv6 address");
}

int real_dir(char const *path, std::string &out, gv_why *why) {
  if (!path || !*path)
    return fail(why, GV_EINVAL, "no directory given");
  std::string p(path);
  for (size_t i = 1; i <= p.size(); ++i)
    if ((i == p.size() || p[i] == '/') &&
        mkdir(p.substr(0, i).c_str(), 0700) != 0 && errno != EEXIST)
      return fail(why, -errno, "mkdir " + p.substr(0, i) + ": " +
                                   strerror(errno));
  char *r = realpath(path, nullptr);
  if (!r)
    return fail(why, -errno, std::string("realpath ") + path);
  out = r;
  free(r);
  return 0;
}

// The BEP 47 target of the symlink rel (a torrent path) under parent, in a
// share rooted at root (a realpath): where it resolves, relative to root.
// Refused with GV_EFIELD when it dangles or resolves to root itself, outside
// it, or to a hidden entry that the share leaves out.
int link_target(std::string const &root, std::string const &parent,
                std::string const &rel, std::string &target, gv_why *why) {
  char *real = realpath((parent + "/" + rel).c_str(), nullptr);
  if (!real)
    return fail(why, GV_EFIELD, "share refused: symlink " + rel + " dangles");
  std::string r(real);
  free(real);
  if (r.size() <= root.size() + 1 || r.compare(0, root.size() + 1, root + "/"))
    return fail(why, GV_EFIELD,
                "share refused: symlink " + rel + " leads outside " + root +
                    ", to " + r);
  target = r.substr(root.size() + 1);
  if (target[0] == '.' || target.find("/.") != std::string::npos)
    return fail(why, GV_EFIELD,
                "share refused: symlink " + rel +
                    " leads to a hidden entry, which a share leaves out");
  return 0;
}

// listen_interfaces for a comma-separated list of IPs (NULL: 127.0.0.1),
// all on port; each IP is checked, IPv6 ones get brackets.
int listen_list(char const *ips, uint16_t port, std::string &out,
                std::vector<lt::address> &addrs, gv_why *why) {
  std::string list = ips ? ips : "127.0.0.1";
  size_t pos = 0;
  out.clear();
  addrs.clear();
  for (;;) {
    size_t next = list.find(',', pos);
    if (next == std::string::npos)
      next = list.size();
    std::string ip = list.substr(pos, next - pos);
    lt::error_code ec;
    lt::address a = lt::make_address(ip, ec);
    if (ec || ip.empty())
      return fail(why, GV_EINVAL, "torrent: bad listen IP '" + ip + "'");
    addrs.push_back(a);
    if (!out.empty())
      out += ",";
    out += (a.is_v6() ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
    if (next == list.size())
      return 0;
    pos = next + 1;
  }
}

// Whether something listens on TCP a:port: a bind with SO_REUSEADDR is
// refused (EADDRINUSE) only by a socket in the LISTEN state there.
bool listening_on(lt::address const &a, uint16_t port) {
  lt::tcp::endpoint ep(a, port);
  int fd =
      socket(a.is_v6() ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (a.is_v6())
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  bool busy =
      bind(fd, ep.data(), socklen_t(ep.size())) != 0 && errno == EADDRINUSE;
  close(fd);
  return busy;
}

void fill_status(entry &e, gv_tor_status *st) {
  memset(st, 0, sizeof *st);
  to_ih(e.ih, &st->ih);
  snprintf(st->save_path, sizeof st->save_path, "%s", e.save_path.c_str());
  lt::torrent_status s = e.h.status(lt::torrent_handle::query_name |
                                    lt::torrent_handle::query_save_path |
                                    lt::torrent_handle::query_torrent_file);
  auto ti = s.torrent_file.lock();
  if (e.failed) {
    st->state = GV_TOR_ERROR;
    snprintf(st->error, sizeof st->error, "%s", e.error.c_str());
  } else if (s.errc && !e.file_error.empty()) {
    // Writes in flight fail after the first error, often differently
    // (EFAULT after ENOSPC): the first says what happened.
    st->state = GV_TOR_ERROR;
    snprintf(st->error, sizeof st->error, "%s", e.file_error.c_str());
  } else if (s.errc) {
    st->state = GV_TOR_ERROR;
    std::string reason;
    if (s.error_file >= lt::file_index_t{0} && ti)
      reason = ti->files().file_path(s.error_file) + ": ";
    map_error(s.errc, reason);
    snprintf(st->error, sizeof st->error, "%s", reason.c_str());
  } else if (e.need_check || e.moving) {
    // Until its check and its move: libtorrent may call it finished (no
    // file wanted yet).
    st->state = GV_TOR_METADATA;
  } else if (s.flags & lt::torrent_flags::paused) {
    st->state = GV_TOR_PAUSED;
  } else {
    switch (s.state) {
    case lt::torrent_status::checking_files:
    case lt::torrent_status::checking_resume_data:
      st->state = GV_TOR_CHECKING;
      break;
    case lt::torrent_status::downloading_metadata:
      st->state = GV_TOR_METADATA;
      break;
    case lt::torrent_status::finished:
    case lt::torrent_status::seeding:
      st->state = GV_TOR_SEEDING;
      break;
    default:
      st->state = GV_TOR_DOWNLOADING;
    }
  }
  st->done = uint64_t(s.total_wanted_done);
  st->total = uint64_t(s.total_wanted);
  st->progress = st->total ? double(st->done) / double(st->total) : 0.0;
  st->down_rate = s.download_payload_rate;
  st->up_rate = s.upload_payload_rate;
  st->downloaded = uint64_t(s.total_payload_download);
  st->uploaded = uint64_t(s.total_payload_upload);
  st->all_downloaded = uint64_t(s.all_time_download);
  st->all_uploaded = uint64_t(s.all_time_upload);
  st->peers = s.num_peers;
  st->pieces_done = s.num_pieces;
  st->pieces_total = ti ? ti->num_pieces() : 0;
  st->ratio = st->total ? double(st->all_uploaded) / double(st->total) : 0.0;
  snprintf(st->name, sizeof st->name, "%s", s.name.c_str());
}

} // namespace

extern "C" {

void gv_tor_hex(const uint8_t *hash, size_t n, char *out) {
  gv_hex_encode(out, hash, n);
}

const char *gv_tor_ev_name(gv_tor_ev_type type) {
  switch (type) {
  case GV_TOR_EV_ADDED: return "added";
  case GV_TOR_EV_METADATA: return "metadata";
  case GV_TOR_EV_PIECE: return "piece";
  case GV_TOR_EV_FINISHED: return "finished";
  case GV_TOR_EV_HASH_FAILED: return "hash_failed";
  case GV_TOR_EV_PEER_BANNED: return "peer_banned";
  case GV_TOR_EV_FILE_ERROR: return "file_error";
  case GV_TOR_EV_TORRENT_ERROR: return "torrent_error";
  case GV_TOR_EV_REMOVED: return "removed";
  case GV_TOR_EV_RESUME_SAVED: return "resume_saved";
  }
  return "unknown";
}

int gv_tor_new(gv_tor **out, const gv_tor_cfg *cfg, gv_why *why) {
  *out = nullptr;
  try {
    auto t = std::make_unique<gv_tor>();
    int rc = real_dir(cfg->state_dir, t->state_dir, why);
    if (rc < 0)
      return rc;
    // Metadata phases of an earlier session that ended without cleaning.
    std::error_code fec;
    std::filesystem::remove_all(t->state_dir + "/.meta", fec);
    // Tuned like the benchmark's bare pair: a node shares big files.
    lt::settings_pack sp = lt::high_performance_seed();
    std::string ifs;
    std::vector<lt::address> addrs;
    rc = listen_list(cfg->listen_ip, cfg->listen_port, ifs, addrs, why);
    if (rc < 0)
      return rc;
    sp.set_str(lt::settings_pack::listen_interfaces, ifs);
    sp.set_bool(lt::settings_pack::listen_system_port_fallback, false);
    sp.set_bool(lt::settings_pack::enable_dht, cfg->dht != 0);
    sp.set_str(lt::settings_pack::dht_bootstrap_nodes, "");
    sp.set_bool(lt::settings_pack::enable_lsd, cfg->lsd != 0);
    sp.set_bool(lt::settings_pack::enable_upnp, cfg->upnp != 0);
    sp.set_bool(lt::settings_pack::enable_natpmp, cfg->natpmp != 0);
    sp.set_bool(lt::settings_pack::enable_outgoing_utp, cfg->utp != 0);
    sp.set_bool(lt::settings_pack::enable_incoming_utp, cfg->utp != 0);
    sp.set_bool(lt::settings_pack::enable_outgoing_tcp, true);
    sp.set_bool(lt::settings_pack::enable_incoming_tcp, true);
    int policy = lt::settings_pack::pe_forced;
    int level = lt::settings_pack::pe_rc4;
    if (cfg->encryption == GV_TOR_ENC_ENABLED) {
      policy = lt::settings_pack::pe_enabled;
      level = lt::settings_pack::pe_both;
    } else if (cfg->encryption == GV_TOR_ENC_DISABLED) {
      policy = lt::settings_pack::pe_disabled;
      level = lt::settings_pack::pe_plaintext;
    }
    sp.set_int(lt::settings_pack::out_enc_policy, policy);
    sp.set_int(lt::settings_pack::in_enc_policy, policy);
    sp.set_int(lt::settings_pack::allowed_enc_level, level);
    sp.set_bool(lt::settings_pack::prefer_rc4,
                cfg->encryption != GV_TOR_ENC_DISABLED);
    sp.set_int(lt::settings_pack::tick_interval,
               cfg->tick_ms > 0 ? cfg->tick_ms : 100);
    sp.set_int(lt::settings_pack::upload_rate_limit, cfg->upload_rate);
    sp.set_int(lt::settings_pack::download_rate_limit, cfg->download_rate);
    // The node's local proxy (issue 11) makes every peer 127.0.0.1.
    sp.set_bool(lt::settings_pack::allow_multiple_connections_per_ip, true);
    // A target's metadata phase is upload-only (see gv_tor_add): with
    // libtorrent's default, it and its seeders would drop their connection
    // the moment the metadata arrives, and the download would wait for
    // libtorrent's next connect round (once a second). A finished download
    // still ends its connections to seeds (close_seeds).
    sp.set_bool(lt::settings_pack::close_redundant_connections, false);
    // Peers come from gossip, a few known holders: one whose connection
    // dropped (a restarted seeder, the recheck of a file already in the
    // save path) is dialled again after a second, not libtorrent's 60.
    sp.set_int(lt::settings_pack::min_reconnect_time, 1);
    sp.set_int(lt::settings_pack::alert_mask,
               lt::alert_category::status | lt::alert_category::error |
                   lt::alert_category::storage |
                   lt::alert_category::piece_progress |
                   lt::alert_category::peer);
    // No default plugins: peer exchange only when asked for.
    lt::session_params params(std::move(sp),
                              std::vector<std::shared_ptr<lt::plugin>>{});
    t->ses = std::make_unique<lt::session>(std::move(params));
    // Rate limits bind every peer: libtorrent exempts local networks (and
    // loopback, where the node's proxy puts every peer) by default.
    lt::ip_filter classes;
    std::uint32_t global = 1u << static_cast<std::uint32_t>(
                               lt::session::global_peer_class_id);
    classes.add_rule(lt::make_address("0.0.0.0"),
                     lt::make_address("255.255.255.255"), global);
    classes.add_rule(lt::make_address("::"),
                     lt::make_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
                     global);
    t->ses->set_peer_class_filter(classes);
    t->ses->add_extension(&lt::create_ut_metadata_plugin);
    t->ses->add_extension(&lt::create_smart_ban_plugin);
    t->ses->add_extension([](lt::torrent_handle const &, lt::client_data_t) {
      return std::make_shared<close_seeds>();
    });
    if (cfg->pex)
      t->ses->add_extension(&lt::create_ut_pex_plugin);
    if (cfg->notify) {
      void (*fn)(void *) = cfg->notify;
      void *ctx = cfg->notify_ctx;
      t->ses->set_alert_notify([fn, ctx] { fn(ctx); });
    }
    *out = t.release();
    return 0;
  } catch (...) {
    return caught(why);
  }
}

void gv_tor_free(gv_tor *t) {
  if (!t)
    return;
  try {
    int waiting = 0;
    for (auto &e : t->torrents) {
      if (e->failed || e->need_check || e->moving ||
          !e->h.torrent_file())
        continue;
      if (!e->save_pending)
        e->h.save_resume_data(lt::torrent_handle::save_info_dict);
      e->save_pending = true;
      ++waiting;
    }
    auto deadline = clock_type::now() + std::chrono::seconds(10);
    std::vector<lt::alert *> alerts;
    while (waiting > 0 && clock_type::now() < deadline) {
      auto left = std::chrono::duration_cast<lt::time_duration>(
          deadline - clock_type::now());
      if (!t->ses->wait_for_alert(left))
        break;
      t->ses->pop_alerts(&alerts);
      for (lt::alert *a : alerts) {
        std::string why;
        if (auto *s = lt::alert_cast<lt::save_resume_data_alert>(a)) {
          save_resume(t, s->params, why);
          --waiting;
        } else if (lt::alert_cast<lt::save_resume_data_failed_alert>(a)) {
          --waiting;
        }
      }
    }
    t->ses->set_alert_notify([] {});
    t->ses.reset(); // waits for libtorrent's threads: .meta is quiet now
    std::error_code fec;
    std::filesystem::remove_all(t->state_dir + "/.meta", fec);
  } catch (...) {
    caught(nullptr);
  }
  delete t;
}

uint16_t gv_tor_port(gv_tor *t) {
  try {
    return t->ses->listen_port();
  } catch (...) {
    caught(nullptr);
    return 0;
  }
}

int gv_tor_set_listen(gv_tor *t, const char *ip, uint16_t port, gv_why *why) {
  try {
    std::string ifs;
    std::vector<lt::address> addrs;
    int rc = listen_list(ip, port, ifs, addrs, why);
    if (rc < 0)
      return rc;
    lt::settings_pack sp;
    sp.set_str(lt::settings_pack::listen_interfaces, ifs);
    // Posted to libtorrent's thread, which rebinds there; listen_port()
    // is a synchronous call queued after it, so the sockets are settled.
    t->ses->apply_settings(std::move(sp));
    uint16_t bound = t->ses->listen_port();
    if (bound == 0 || (port != 0 && bound != port))
      return fail(why, GV_ESTATE, "torrent: cannot listen on " + ifs);
    for (auto const &a : addrs)
      if (!listening_on(a, bound))
        return fail(why, GV_ESTATE,
                    "torrent: cannot listen on " + a.to_string() + ":" +
                        std::to_string(bound));
    return 0;
  } catch (...) {
    return caught(why);
  }
}

int gv_tor_create(const char *path, uint32_t piece_size, uint8_t **torrent,
                  size_t *len, gv_tor_ih *ih, gv_why *why) {
  return gv_tor_create_cancel(path, piece_size, nullptr, torrent, len, ih, why);
}

int gv_tor_create_cancel(const char *path, uint32_t piece_size,
                         const int *cancel, uint8_t **torrent, size_t *len,
                         gv_tor_ih *ih, gv_why *why) {
  *torrent = nullptr;
  *len = 0;
  // Thrown from set_piece_hashes' per-piece callback: libtorrent's
  // disk_aborter then stops its disk threads as the stack unwinds.
  struct canceled {};
  auto stopped = [cancel] {
    return cancel != nullptr && __atomic_load_n(cancel, __ATOMIC_RELAXED);
  };
  try {
    if (piece_size && (piece_size < 16384 || (piece_size & (piece_size - 1))))
      return fail(why, GV_EINVAL,
                  "piece size must be 0 or a power of two >= 16 KiB");
    std::string p(path);
    while (p.size() > 1 && p.back() == '/')
      p.pop_back();
    char *real = realpath(p.c_str(), nullptr);
    if (!real)
      return fail(why, -errno, "cannot open " + p);
    p = real;
    free(real);
    std::string parent = p.substr(0, p.rfind('/'));
    // Symlinks are listed, never followed (add_files would follow one out
    // of p, or loop on one to an ancestor); hidden entries under p are
    // left out (a project's .env, .git).
    lt::file_storage raw;
    lt::add_files(
        raw, p,
        [&p](std::string const &f) {
          return f == p || f[f.rfind('/') + 1] != '.';
        },
        lt::create_torrent::symlinks);
    // libtorrent stores readlink()'s text as the BEP 47 target, which is
    // relative to the torrent's root: wrong for a link in a subdirectory,
    // and a way out for "../x". Each target is resolved here instead.
    lt::file_storage fs;
    for (lt::file_index_t i : raw.file_range()) {
      std::string rel = raw.file_path(i);
      if (!(raw.file_flags(i) & lt::file_storage::flag_symlink)) {
        fs.add_file(rel, raw.file_size(i), raw.file_flags(i));
        continue;
      }
      std::string target;
      int rc = link_target(p, parent, rel, target, why);
      if (rc < 0)
        return rc;
      fs.add_file(rel, 0, raw.file_flags(i), 0, target);
    }
    if (fs.num_files() == 0 || fs.total_size() == 0)
      return fail(why, GV_EINVAL, p + ": no files to share");
    lt::create_torrent ct(fs, int(piece_size), lt::create_torrent::symlinks);
    lt::error_code ec;
    try {
      if (stopped())
        throw canceled{};
      lt::set_piece_hashes(
          ct, parent.empty() ? "/" : parent,
          [&stopped](lt::piece_index_t) {
            if (stopped())
              throw canceled{};
          },
          ec);
    } catch (canceled const &) {
      return fail(why, GV_ECANCELED, "hashing " + p + ": cancelled");
    }
    if (ec) {
      std::string reason = "hashing " + p + ": ";
      return fail(why, map_error(ec, reason), reason);
    }
    std::vector<char> buf;
    lt::bencode(std::back_inserter(buf), ct.generate());
    lt::torrent_info ti(buf, lt::from_span);
    uint8_t *copy = static_cast<uint8_t *>(malloc(buf.size()));
    if (!copy)
      return fail(why, GV_ENOMEM, "out of memory");
    memcpy(copy, buf.data(), buf.size());
    *torrent = copy;
    *len = buf.size();
    to_ih(ti.info_hashes(), ih);
    return 0;
  } catch (...) {
    return caught(why);
  }
}

void gv_tor_bytes_free(uint8_t *p) { free(p); }

int gv_tor_magnet(const gv_tor_ih *ih, const char *name, char *out,
                  size_t cap) {
  try {
    if (!ih->has_v1 && !ih->has_v2)
      return GV_EINVAL;
    std::string m = "magnet:?";
    char h[65];
    if (ih->has_v1) {
      gv_tor_hex(ih->v1, 20, h);
      m += std::string("xt=urn:btih:") + h;
    }
    if (ih->has_v2) {
      gv_tor_hex(ih->v2, 32, h);
      m += std::string(ih->has_v1 ? "&" : "") + "xt=urn:btmh:1220" + h;
    }
    if (name && *name) {
      m += "&dn=";
      for (unsigned char const *c = (unsigned char const *)name; *c; ++c) {
        if (isalnum(*c) || strchr("-._~", *c)) {
          m += char(*c);
        } else {
          char pct[4];
          snprintf(pct, sizeof pct, "%%%02X", *c);
          m += pct;
        }
      }
    }
    if (m.size() + 1 > cap)
      return GV_ETOOBIG;
    memcpy(out, m.c_str(), m.size() + 1);
    return int(m.size());
  } catch (...) {
    return caught(nullptr);
  }
}

int gv_tor_parse_target(const char *s, size_t len, gv_tor_target *out,
                        gv_why *why) {
  memset(out, 0, sizeof *out);
  try {
    if (len > GV_TOR_TARGET_MAX)
      return gv_fail(why, GV_ETOOBIG, "too long: %zu bytes, at most %d", len,
                     GV_TOR_TARGET_MAX);
    if (len == 0)
      return gv_fail(why, GV_EINVAL, "empty: want an info-hash or a magnet");
    if (memchr(s, '\0', len))
      return gv_fail(why, GV_EINVAL, "a NUL byte in the input");
    lt::string_view in(s, len);
    if (in.size() >= 7 && strncasecmp(s, "magnet:", 7) == 0) {
      if (in.size() < 8 || in[7] != '?')
        return gv_fail(why, GV_EINVAL, "not a magnet link: no '?' after "
                                       "\"magnet:\"");
      lt::error_code ec;
      lt::add_torrent_params atp = lt::parse_magnet_uri(in, ec);
      if (ec == lt::errors::missing_info_hash_in_uri)
        return gv_fail(why, GV_EINVAL,
                       "magnet link without urn:btih or urn:btmh");
      if (ec)
        return gv_fail(why, GV_EINVAL, "bad magnet link: %s",
                       ec.message().c_str());
      if (!atp.info_hashes.has_v1() && !atp.info_hashes.has_v2())
        return gv_fail(why, GV_EINVAL,
                       "magnet link without urn:btih or urn:btmh");
      if (atp.name.size() > GV_TOR_NAME_MAX)
        return gv_fail(why, GV_EINVAL, "dn too long: %zu bytes, at most %d",
                       atp.name.size(), GV_TOR_NAME_MAX);
      if (atp.name.find('\0') != std::string::npos)
        return gv_fail(why, GV_EINVAL, "a NUL byte in dn");
      to_ih(atp.info_hashes, &out->ih);
      memcpy(out->name, atp.name.data(), atp.name.size());
      return 0;
    }
    if (in.find(':') != lt::string_view::npos)
      return gv_fail(why, GV_EINVAL,
                     "not a magnet link (want \"magnet:?xt=...\") or a hex "
                     "info-hash");
    for (size_t i = 0; i < len; ++i)
      if (!isxdigit((unsigned char)s[i]))
        return gv_fail(why, GV_EINVAL, "bad hex: byte 0x%02x at offset %zu",
                       (unsigned char)s[i], i);
    if (len != 40 && len != 64)
      return gv_fail(why, GV_EINVAL,
                     "wrong length: %zu hex digits, want 40 (v1) or 64 (v2)",
                     len);
    uint8_t *dst = len == 40 ? out->ih.v1 : out->ih.v2;
    if (gv_hex_decode(dst, len / 2, s, len) < 0) { // checked just above
      memset(out, 0, sizeof *out);
      return gv_fail(why, GV_EINVAL, "bad hex");
    }
    uint8_t any = 0;
    for (size_t i = 0; i < len / 2; ++i)
      any |= dst[i];
    if (!any) { // libtorrent reads an all-zero hash as no hash at all
      memset(out, 0, sizeof *out);
      return gv_fail(why, GV_EINVAL, "an all-zero info-hash names no torrent");
    }
    (len == 40 ? out->ih.has_v1 : out->ih.has_v2) = 1;
    return 0;
  } catch (...) {
    memset(out, 0, sizeof *out);
    return caught(why);
  }
}

int gv__tor_check_torrent(const uint8_t *torrent, size_t len,
                          const char *root, gv_why *why) {
  try {
    char *r = realpath(root, nullptr);
    if (!r)
      return fail(why, -errno, std::string("realpath ") + root);
    std::string real(r);
    free(r);
    std::shared_ptr<lt::torrent_info> ti;
    return check_torrent(lt::span<char const>(
                             reinterpret_cast<char const *>(torrent),
                             long(len)),
                         real, ti, why);
  } catch (...) {
    return caught(why);
  }
}

int gv__tor_paths(const uint8_t *torrent, size_t len,
                  void (*fn)(void *ctx, const char *path, size_t n),
                  void *ctx) {
  try {
    lt::error_code ec;
    lt::torrent_info ti(lt::span<char const>(
                            reinterpret_cast<char const *>(torrent), long(len)),
                        ec, lt::from_span);
    if (ec)
      return GV_EFIELD;
    lt::file_storage const &fs = ti.files();
    int n = 0;
    for (lt::file_index_t i : fs.file_range()) {
      lt::file_flags_t fl = fs.file_flags(i);
      if (fl & lt::file_storage::flag_pad_file)
        continue;
      std::string p = fs.file_path(i);
      fn(ctx, p.c_str(), p.size());
      ++n;
      if (fl & lt::file_storage::flag_symlink) {
        p = fs.symlink(i);
        fn(ctx, p.c_str(), p.size());
        ++n;
      }
    }
    return n;
  } catch (...) {
    return caught(nullptr);
  }
}

int gv_tor_add(gv_tor *t, const gv_tor_add_params *p, gv_tor_ih *ih,
               gv_why *why) {
  try {
    if ((p->torrent != nullptr) == (p->target != nullptr))
      return fail(why, GV_EINVAL, "give either .torrent bytes or a target");
    std::string save;
    int rc = real_dir(p->save_path, save, why);
    if (rc < 0)
      return rc;
    std::shared_ptr<lt::torrent_info> ti;
    lt::info_hash_t want;
    std::string meta;
    if (p->torrent) {
      lt::span<char const> buf(reinterpret_cast<char const *>(p->torrent),
                               long(p->torrent_len));
      rc = check_torrent(buf, save, ti, why);
      if (rc < 0)
        return rc;
      ti->clear_trackers();
      ti->set_web_seeds({});
      want = ti->info_hashes();
    } else {
      want = from_ih(p->target->ih);
      if (!want.has_v1() && !want.has_v2())
        return fail(why, GV_EINVAL, "target without an info-hash");
    }
    if (find(t, want))
      return fail(why, GV_EDUP, "torrent already added");
    if (p->n_peers > GV_TOR_ADD_PEERS_MAX)
      return gv_fail(why, GV_ETOOBIG, "%zu peers, at most %d", p->n_peers,
                     GV_TOR_ADD_PEERS_MAX);
    std::vector<lt::tcp::endpoint> peers;
    for (size_t i = 0; i < p->n_peers; ++i)
      peers.push_back(
          endpoint_of(reinterpret_cast<struct sockaddr const *>(&p->peers[i])));

    // Unreadable resume data costs a full check of the files, nothing more:
    // libtorrent hashes what is on disk and keeps every piece that passes.
    lt::add_torrent_params atp;
    rc = 0;
    if (want.has_v1())
      rc = load_resume(t, resume_name(want, false), atp, nullptr);
    if (rc <= 0 && want.has_v2())
      rc = load_resume(t, resume_name(want, true), atp, nullptr);
    if (rc != 1 || !same(atp.info_hashes, want))
      atp = lt::add_torrent_params();
    bool need_check = false;
    if (ti) {
      atp.ti = ti;
    } else if (atp.ti) { // resumed with its info dict
      rc = check_ti(*atp.ti, save, why);
      if (rc < 0)
        return rc;
      atp.ti->clear_trackers();
      atp.ti->set_web_seeds({});
    } else {
      // Until its metadata passed the check, libtorrent writes (empty
      // files, directories, BEP 47 symlinks) only in a private directory.
      atp.info_hashes = want;
      atp.name = p->target->name;
      need_check = true;
      meta = meta_dir(t, want);
      remove_meta(meta);
      rc = real_dir(meta.c_str(), meta, why);
      if (rc < 0)
        return rc;
    }
    atp.save_path = need_check ? meta : save;
    atp.trackers.clear();
    atp.tracker_tiers.clear();
    atp.url_seeds.clear();
    atp.dht_nodes.clear();
    atp.flags &= ~(lt::torrent_flags::auto_managed |
                   lt::torrent_flags::paused |
                   lt::torrent_flags::upload_mode |
                   lt::torrent_flags::seed_mode);
    if (need_check)
      atp.flags |= lt::torrent_flags::upload_mode |
                   lt::torrent_flags::default_dont_download;
    if (p->flags & GV_TOR_ADD_SEED_MODE)
      atp.flags |= lt::torrent_flags::seed_mode;
    atp.peers = peers;
    // libtorrent dials the peers it knows once a second, on its own clock,
    // except for its "connect boost" when a torrent resumes: a target,
    // which has no files to check, is added paused and resumed at once, so
    // its peers are dialled now. Both run in order on libtorrent's thread.
    bool boost = need_check && !peers.empty();
    if (boost)
      atp.flags |= lt::torrent_flags::paused;
    lt::error_code ec;
    lt::torrent_handle h = t->ses->add_torrent(std::move(atp), ec);
    if (!ec && boost)
      h.resume();
    if (ec)
      remove_meta(meta);
    if (ec == lt::errors::duplicate_torrent)
      return fail(why, GV_EDUP, "torrent already added");
    if (ec) {
      std::string reason = "add: ";
      return fail(why, map_error(ec, reason), reason);
    }
    auto e = std::make_unique<entry>();
    e->h = h;
    e->ih = ti ? ti->info_hashes() : h.info_hashes();
    if (!e->ih.has_v1() && !e->ih.has_v2())
      e->ih = want;
    e->save_path = save;
    e->need_check = need_check;
    e->meta_dir = meta;
    if (ih)
      to_ih(e->ih, ih);
    t->torrents.push_back(std::move(e));
    return 0;
  } catch (std::invalid_argument const &x) {
    return fail(why, GV_EINVAL, x.what());
  } catch (...) {
    return caught(why);
  }
}

int gv_tor_connect(gv_tor *t, const gv_tor_ih *ih, const struct sockaddr *sa,
                   gv_why *why) {
  try {
    entry *e = find(t, from_ih(*ih));
    if (!e)
      return fail(why, GV_ENOT_FOUND, "no such torrent");
    e->h.connect_peer(endpoint_of(sa));
    return 0;
  } catch (std::invalid_argument const &x) {
    return fail(why, GV_EINVAL, x.what());
  } catch (...) {
    return caught(why);
  }
}

int gv_tor_remove(gv_tor *t, const gv_tor_ih *ih, int delete_files,
                  gv_why *why) {
  try {
    lt::info_hash_t want = from_ih(*ih);
    for (auto it = t->torrents.begin(); it != t->torrents.end(); ++it) {
      entry &e = **it;
      if (!same(e.ih, want))
        continue;
      t->ses->remove_torrent(e.h, delete_files
                                      ? lt::session_handle::delete_files
                                      : lt::remove_flags_t{});
      if (!e.meta_dir.empty()) {
        t->retired.push_back({e.ih, e.meta_dir});
        remove_meta(e.meta_dir);
      }
      if (e.ih.has_v1())
        unlink((t->state_dir + "/" + resume_name(e.ih, false)).c_str());
      if (e.ih.has_v2())
        unlink((t->state_dir + "/" + resume_name(e.ih, true)).c_str());
      t->torrents.erase(it);
      return 0;
    }
    return fail(why, GV_ENOT_FOUND, "no such torrent");
  } catch (...) {
    return caught(why);
  }
}

int gv_tor_status_get(gv_tor *t, const gv_tor_ih *ih, gv_tor_status *st,
                      gv_why *why) {
  try {
    entry *e = find(t, from_ih(*ih));
    if (!e)
      return fail(why, GV_ENOT_FOUND, "no such torrent");
    fill_status(*e, st);
    return 0;
  } catch (...) {
    return caught(why);
  }
}

int gv_tor_peers(gv_tor *t, const gv_tor_ih *ih, struct sockaddr_storage *out,
                 size_t max, gv_why *why) {
  try {
    entry *e = find(t, from_ih(*ih));
    if (!e)
      return fail(why, GV_ENOT_FOUND, "no such torrent");
    std::vector<lt::peer_info> info;
    e->h.get_peer_info(info);
    for (size_t i = 0; i < info.size() && i < max; i++) {
      std::memset(&out[i], 0, sizeof(out[i]));
      std::memcpy(&out[i], info[i].ip.data(),
                  std::min(sizeof(out[i]), size_t(info[i].ip.size())));
    }
    return int(info.size());
  } catch (...) {
    return caught(why);
  }
}

int gv_tor_list(gv_tor *t, gv_tor_status *st, size_t max) {
  try {
    size_t i = 0;
    for (auto &e : t->torrents) {
      if (i < max)
        fill_status(*e, &st[i]);
      ++i;
    }
    return int(i);
  } catch (...) {
    return caught(nullptr);
  }
}

int gv_tor_poll(gv_tor *t, gv_tor_event *ev, size_t max) {
  try {
    std::vector<lt::alert *> alerts;
    t->ses->pop_alerts(&alerts);
    for (size_t i = 0; i < alerts.size(); ++i)
      dispatch(t, alerts, i);
    auto now = clock_type::now();
    for (auto &e : t->torrents)
      if (e->unsaved >= GV_TOR_RESUME_PIECES ||
          (e->unsaved > 0 &&
           now - e->first_unsaved >= std::chrono::milliseconds(GV_TOR_RESUME_MS)))
        request_save(*e);
    size_t n = 0;
    while (n < max && !t->pending.empty()) {
      ev[n++] = t->pending.front();
      t->pending.pop_front();
    }
    return int(n);
  } catch (...) {
    return caught(nullptr);
  }
}

} // extern "C"
