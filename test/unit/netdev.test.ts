// What a restore checks in netdev-N.img before it makes anything (checkLinks),
// and how --external names the outside ends of links.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { create, MacvlanLinkEntrySchema, NetDeviceEntrySchema, NdType, TunLinkEntrySchema } from '../../src/images/index.js';
import { checkLinks, macvlanExternal, netdevExternal, vethExternal } from '../../src/objects/netdev.js';

const link = (f: Record<string, unknown>) => create(NetDeviceEntrySchema, { mtu: 1500, flags: 1, ...f });
const lo = link({ type: NdType.LOOPBACK, ifindex: 1, name: 'lo', peerIfindex: 1, peerNsid: 7 });
const outside = link({ type: NdType.VETH, ifindex: 2, name: 'eth0', peerIfindex: 9 });
const a = link({ type: NdType.VETH, ifindex: 3, name: 'a', peerIfindex: 4, peerNsid: 7 });
const b = link({ type: NdType.VETH, ifindex: 4, name: 'b', peerIfindex: 3, peerNsid: 7, master: 5 });
const br = link({ type: NdType.BRIDGE, ifindex: 5, name: 'br', peerIfindex: 5, peerNsid: 7 });
const check = (links: ReturnType<typeof link>[], ext: string[] = []) => checkLinks(links, 7, 'netdev-7.img', ext, 'task 42');

describe('netdev checks', () => {
  it('an in-namespace pair and its bridge need nothing', () => {
    check([lo, a, b, br]);
  });
  it('a veth whose peer was outside needs --external veth[] or netdev[]', () => {
    assert.throws(() => check([lo, outside]), { message: 'restore failed: task 42: veth eth0 of its network namespace (netdev-7.img) has its peer outside the tree, and no --external veth[eth0]:HOSTIF names it' });
    check([lo, outside], ['veth[eth0]:h0@br0']);
    check([lo, outside], ['netdev[eth0]:c1']);
  });
  it('an in-namespace pair named by --external is refused (it would be made twice)', () => {
    assert.throws(() => check([lo, a, b, br], ['veth[a]:x']), /--external names veth a of netdev-7\.img, whose peer is in the tree's namespace too/);
  });
  it('a pair that does not pair up, or a master that is no bridge, is a bad image', () => {
    assert.throws(() => check([lo, a]), /bad image: netdev-7\.img: veth a has peer index 4, which is not a veth paired with it/);
    assert.throws(() => check([lo, a, link({ ...b, master: 1 })]), /link b has master index 1, which is not a bridge/);
  });
  it('a macvlan needs its lower link named; a tun that was not persistent needs a tun file attached to it', () => {
    const mv = link({ type: NdType.MACVLAN, ifindex: 6, name: 'mv', peerIfindex: 3, macvlan: create(MacvlanLinkEntrySchema, { mode: 4 }) });
    assert.throws(() => check([lo, mv]), /macvlan mv of its network namespace \(netdev-7\.img\) needs its lower link named: --external macvlan\[mv\]:HOSTIF/);
    check([lo, mv], ['macvlan[mv]:br0']);
    const tun = link({ type: NdType.TUN, ifindex: 8, name: 't', tun: create(TunLinkEntrySchema, { flags: 0x1002, owner: -1, group: -1 }) });
    assert.throws(() => check([lo, tun]), /bad image: netdev-7\.img: tun link t is not persistent, and no tun file of files\.img is attached to it/);
    checkLinks([lo, tun], 7, 'netdev-7.img', [], 'task 42', new Set(['t']));
    check([lo, link({ ...tun, tun: create(TunLinkEntrySchema, { flags: 0x1802, owner: -1, group: -1 }) })]);
  });
  it('reads the external names as CRIU writes them', () => {
    assert.deepEqual(vethExternal(['veth[eth0]:vethABC@lxcbr0'], 'eth0'), { host: 'vethABC', bridge: 'lxcbr0' });
    assert.deepEqual(vethExternal(['veth[eth0]:h0'], 'eth0'), { host: 'h0' });
    assert.equal(vethExternal(['veth[eth1]:h0'], 'eth0'), undefined);
    assert.equal(macvlanExternal(['macvlan[mv]:br0'], 'mv'), 'br0');
    assert.equal(netdevExternal(['netdev[c0]:c1'], 'c0'), 'c1');
  });
});
