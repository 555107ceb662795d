// Mocha root hooks: every test file runs on the backend the library would choose.
import { initBackend } from '../src/backend';

export const mochaHooks = {
  async beforeAll(): Promise<void> {
    await initBackend();
  },
};
