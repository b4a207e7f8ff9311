// tor_bare: the benchmark's anchor, a bare libtorrent 2.0 peer with the
// tuned settings of DESIGN-BRIEF.md (high_performance_seed, 100 ms tick,
// TCP only, no encryption), written against libtorrent directly. Same
// command line and output as tests/tor_peer for the options it shares:
//
//   tor_bare seed --file F --torrent-out T   prints "port N", then "ready"
//                                            once seeding; runs until killed
//   tor_bare fetch --torrent T --out DIR --peer IP:PORT
//       prints "finished ms=.. first_piece_ms=.. downloaded=.. total=.."
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <libtorrent/alert_types.hpp>
#include <libtorrent/bencode.hpp>
#include <libtorrent/create_torrent.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/torrent_info.hpp>

namespace {

volatile std::sig_atomic_t stopping = 0;
void on_signal(int) { stopping = 1; }

lt::settings_pack tuned() {
  lt::settings_pack sp = lt::high_performance_seed();
  sp.set_str(lt::settings_pack::listen_interfaces, "127.0.0.1:0");
  sp.set_int(lt::settings_pack::tick_interval, 100);
  sp.set_bool(lt::settings_pack::enable_outgoing_utp, false);
  sp.set_bool(lt::settings_pack::enable_incoming_utp, false);
  sp.set_bool(lt::settings_pack::enable_dht, false);
  sp.set_bool(lt::settings_pack::enable_lsd, false);
  sp.set_bool(lt::settings_pack::enable_upnp, false);
  sp.set_bool(lt::settings_pack::enable_natpmp, false);
  sp.set_int(lt::settings_pack::out_enc_policy, lt::settings_pack::pe_disabled);
  sp.set_int(lt::settings_pack::in_enc_policy, lt::settings_pack::pe_disabled);
  sp.set_int(lt::settings_pack::alert_mask,
             lt::alert_category::status | lt::alert_category::error |
                 lt::alert_category::piece_progress);
  return sp;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - t0)
      .count();
}

int usage() {
  std::fprintf(stderr, "usage: tor_bare seed --file F --torrent-out T | "
                       "fetch --torrent T --out DIR --peer IP:PORT\n");
  return 64;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2)
    return usage();
  bool fetch = std::strcmp(argv[1], "fetch") == 0;
  std::string file, tout, tin, out, peer;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string o = argv[i], v = argv[i + 1];
    if (o == "--file")
      file = v;
    else if (o == "--torrent-out")
      tout = v;
    else if (o == "--torrent")
      tin = v;
    else if (o == "--out")
      out = v;
    else if (o == "--peer")
      peer = v;
    else
      return usage();
  }
  if (fetch ? tin.empty() || out.empty() || peer.empty()
            : file.empty() || tout.empty())
    return usage();
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  try {
    lt::session ses(tuned());
    lt::add_torrent_params atp;
    if (fetch) {
      atp.ti = std::make_shared<lt::torrent_info>(tin);
      atp.save_path = out;
    } else {
      lt::file_storage fs;
      lt::add_files(fs, file);
      lt::create_torrent ct(fs);
      std::string dir = file.substr(0, file.rfind('/'));
      lt::set_piece_hashes(ct, dir);
      std::vector<char> buf;
      lt::bencode(std::back_inserter(buf), ct.generate());
      std::ofstream(tout, std::ios::binary).write(buf.data(), buf.size());
      atp.ti = std::make_shared<lt::torrent_info>(buf, lt::from_span);
      atp.save_path = dir;
    }
    auto t0 = std::chrono::steady_clock::now();
    lt::torrent_handle h = ses.add_torrent(std::move(atp));
    if (fetch) {
      size_t colon = peer.rfind(':');
      h.connect_peer({lt::make_address(peer.substr(0, colon)),
                      static_cast<unsigned short>(
                          std::stoi(peer.substr(colon + 1)))});
    } else {
      std::printf("port %u\n", ses.listen_port());
      std::fflush(stdout);
    }
    double first = -1;
    auto deadline = t0 + std::chrono::minutes(10);
    while (!stopping && std::chrono::steady_clock::now() < deadline) {
      ses.wait_for_alert(std::chrono::milliseconds(200));
      std::vector<lt::alert *> alerts;
      ses.pop_alerts(&alerts);
      for (lt::alert *a : alerts) {
        if (lt::alert_cast<lt::piece_finished_alert>(a) && first < 0)
          first = ms_since(t0);
        if (auto *e = lt::alert_cast<lt::torrent_error_alert>(a)) {
          std::printf("error %s\n", e->message().c_str());
          return 1;
        }
        if (!lt::alert_cast<lt::torrent_finished_alert>(a))
          continue;
        if (!fetch) {
          std::printf("ready\n");
          std::fflush(stdout);
          continue;
        }
        lt::torrent_status st = h.status();
        std::printf("finished ms=%.1f first_piece_ms=%.1f downloaded=%lld "
                    "total=%lld\n",
                    ms_since(t0), first,
                    static_cast<long long>(st.total_payload_download),
                    static_cast<long long>(st.total_wanted));
        return 0;
      }
    }
    return fetch ? 2 : 0;
  } catch (std::exception const &e) {
    std::fprintf(stderr, "tor_bare: %s\n", e.what());
    return 1;
  }
}
