#define _GNU_SOURCE
#include "fiber.h"
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static void work(void *a){(void)a; __asm__ volatile("":::"memory");}
static double tns(void){struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t); return t.tv_sec*1e9+t.tv_nsec;}
static volatile int mode, stop;
static void pin(int c){cpu_set_t cs; CPU_ZERO(&cs); CPU_SET(c,&cs); pthread_setaffinity_np(pthread_self(),sizeof cs,&cs);}
static void *sib(void *a){ pin(1); unsigned long x=1,y=2,z=3,w=4;
  while(!stop){ int m=mode;
    if(m==0){ struct timespec ts={0,500000}; nanosleep(&ts,0);}
    else if(m==1){ for(int i=0;i<1000;i++) __asm__ volatile("pause"); }
    else if(m==2){ for(int i=0;i<10000;i++) __asm__ volatile("add %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3\n\tadd %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3":"+r"(x),"+r"(y),"+r"(z),"+r"(w)); }
    else { for(int i=0;i<1000;i++) fiber_join(fiber_spawn(work,NULL)); }
  } return a; }
static double thr(long n){ unsigned long a=1,b=2,c=3,d=4; double t0=tns();
  for(long i=0;i<n;i++){ __asm__ volatile("add %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3\n\tadd %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3":"+r"(a),"+r"(b),"+r"(c),"+r"(d)); }
  return (tns()-t0)/(n*8.0);}
int main(int argc,char**argv){
  int rounds=atoi(argv[1]); long it=100000; pin(0);
  pthread_t t; pthread_create(&t,0,sib,0);
  for(long i=0;i<it;i++) fiber_join(fiber_spawn(work,NULL));
  for(int r=0;r<rounds;r++) for(int m=0;m<4;m++){ mode=m;
    struct timespec ts={0,5000000}; nanosleep(&ts,0);
    for(int b=0;b<10;b++){ double th=thr(100000); double t0=tns();
      for(long i=0;i<it;i++){fiber_t*f=fiber_spawn(work,NULL); fiber_join(f);}
      printf("%d %.2f %.4f\n", m, (tns()-t0)/it, th);} }
  stop=1; pthread_join(t,0);
}
