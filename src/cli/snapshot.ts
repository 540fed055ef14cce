// Entry of the start-up snapshot (dist/cryo.blob, see bin/cryo): every module of
// the CLI is loaded and every protobuf descriptor built when the snapshot is made;
// a run only deserializes the heap and calls main(). koffi, a native module,
// loads at the first system call (src/sys/libc.ts).
import * as v8 from 'node:v8';
import { main } from './main.js';
import { userArgs } from '../self.js';

v8.startupSnapshot.setDeserializeMainFunction(() => {
  void main(userArgs());
});
